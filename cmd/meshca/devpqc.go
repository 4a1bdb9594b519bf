package main

import (
	"fmt"
	"path/filepath"

	"github.com/meshca/meshca/backends/file"
)

// mldsaCACerts and compositeCACerts are where 'meshca init' writes the dev ML-DSA-65 and composite
// ML-DSA-65+ECDSA-P256 CAs, in the cacerts layout beside cacerts/.
const (
	mldsaCACerts     = "cacerts-mldsa"
	compositeCACerts = "cacerts-composite"
)

// initDevMLDSA creates dir/cacerts-mldsa, an ML-DSA-65 root and intermediate (RFC 9881), unless it holds a
// CA set already (which must load); it reports whether it created one. serve --dev signs ML-DSA CSRs with it.
func initDevMLDSA(dir, trustDomain string) (bool, error) {
	pq := filepath.Join(dir, mldsaCACerts)
	if err := checkExistingCA(pq); err != nil {
		return false, err
	}
	created, err := file.Init(pq, file.GenerateOptions{Organization: trustDomain, NewKey: file.NewMLDSA65Key})
	if err != nil {
		return false, fmt.Errorf("creating the dev ML-DSA CA: %w", err)
	}
	return created, nil
}

// initDevComposite creates dir/cacerts-composite, a composite ML-DSA-65+ECDSA-P256 root and intermediate
// (draft-ietf-lamps-pq-composite-sigs), unless it holds a CA set already (which must load); it reports whether
// it created one. serve --dev signs composite CSRs with it.
func initDevComposite(dir, trustDomain string) (bool, error) {
	hybrid := filepath.Join(dir, compositeCACerts)
	if err := checkExistingCA(hybrid); err != nil {
		return false, err
	}
	created, err := file.Init(hybrid, file.GenerateOptions{Organization: trustDomain, NewKey: file.NewCompositeKey})
	if err != nil {
		return false, fmt.Errorf("creating the dev composite CA: %w", err)
	}
	return created, nil
}

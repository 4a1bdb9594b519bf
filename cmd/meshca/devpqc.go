package main

import (
	"fmt"
	"path/filepath"

	"github.com/meshca/meshca/backends/file"
)

// mldsaCACerts is where 'meshca init' writes the dev ML-DSA-65 CA, in the cacerts layout beside cacerts/.
const mldsaCACerts = "cacerts-mldsa"

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

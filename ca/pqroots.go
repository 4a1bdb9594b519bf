package ca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/meshca/meshca/backends"
)

// PostQuantumRoots returns the union of the backends' ML-DSA roots (backends.PostQuantumRooter), without
// duplicates, primary backend first; none when no backend has an ML-DSA CA. They are never part of Roots or
// TrustBundle: Envoy loads those, and cannot load ML-DSA certificates yet (envoy#42893).
func (i *Issuer) PostQuantumRoots(ctx context.Context) ([]*x509.Certificate, error) {
	out, errs := i.rootUnion(func(b NamedBackend) ([]*x509.Certificate, error) {
		pq, ok := b.Backend.(backends.PostQuantumRooter)
		if !ok {
			return nil, nil // no ML-DSA CA: contributes nothing, and is no failure
		}
		return pq.PostQuantumRoots(ctx)
	})
	if len(out) == 0 && len(errs) > 0 {
		return nil, fmt.Errorf("ca: no ML-DSA roots available: %w", errors.Join(errs...))
	}
	return out, nil
}

// bundleFor returns the trust bundle sent with leaf: TrustBundle for classical leaves, the ML-DSA roots for an
// ML-DSA leaf and the composite roots for a composite leaf (its chain ends there, and an agent holding such a
// certificate needs those anchors).
func (i *Issuer) bundleFor(ctx context.Context, leaf *x509.Certificate) ([]byte, error) {
	roots := i.PostQuantumRoots
	switch {
	case backends.IsComposite(leaf): // the composite roots, for the same reasons (ca/composite.go)
		roots = i.CompositeRoots
	case leaf.PublicKeyAlgorithm != x509.MLDSA:
		return i.TrustBundle(ctx)
	}
	return rootsPEM(ctx, roots)
}

// rootsPEM returns the PEM of the roots listed, or an ErrUnavailable.
func rootsPEM(ctx context.Context, list func(context.Context) ([]*x509.Certificate, error)) ([]byte, error) {
	roots, err := list(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", backends.ErrUnavailable, err)
	}
	var out []byte
	for _, r := range roots {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})...)
	}
	return out, nil
}

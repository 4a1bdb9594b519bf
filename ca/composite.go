package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/csr/composite"
)

// CompositeRoots returns the union of the backends' composite roots (backends.CompositeRooter), without
// duplicates, primary backend first; none when no backend has a composite CA. They are never part of Roots,
// TrustBundle or PostQuantumRoots: only meshca's own verifier (composite.VerifyChain) checks composite
// signatures, Envoy cannot load them (envoy#42893), and the draft's encodings may still change.
func (i *Issuer) CompositeRoots(ctx context.Context) ([]*x509.Certificate, error) {
	out, errs := i.rootUnion(func(b NamedBackend) ([]*x509.Certificate, error) {
		cr, ok := b.Backend.(backends.CompositeRooter)
		if !ok {
			return nil, nil // no composite CA: contributes nothing, and is no failure
		}
		return cr.CompositeRoots(ctx)
	})
	if len(out) == 0 && len(errs) > 0 {
		return nil, fmt.Errorf("ca: no composite roots available: %w", errors.Join(errs...))
	}
	return out, nil
}

// checkCompositeCA refuses a composite CSR before any backend sees it when none of the backends bs has a
// composite CA (with issuance.experimentalComposite on but no compositeDir): ErrKeyPolicy, InvalidArgument,
// counted and audited like every refusal, instead of a backend's refusal that istio-agent would retry.
func checkCompositeCA(ctx context.Context, bs []NamedBackend, parsed *csr.Request) error {
	if _, ok := parsed.PublicKey.(*composite.PublicKey); !ok {
		return nil
	}
	for _, b := range bs {
		if cr, ok := b.Backend.(backends.CompositeRooter); ok {
			if roots, err := cr.CompositeRoots(ctx); err == nil && len(roots) > 0 {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: a composite key needs a composite CA, and no backend for this request has one "+
		"(configure backends[].file.compositeDir)", csr.ErrKeyPolicy)
}

// verifyComposite is verify for a composite leaf, which crypto/x509 parses but cannot verify. It checks
// what verify checks for every other leaf: the leaf is exactly the one requested (backends.CheckLeaf, which
// verify ran already: names, key, key usages, not a CA, lifetime within its issuer's), the chain ends with one
// of the backend's composite roots (never its classical or ML-DSA ones), and composite.VerifyChain accepts
// the whole path at the current time (every signature, issuer name, validity, CA flag and path length). The
// signature the backend checked in-process is verified again: the composite path has no chain cache.
func (i *Issuer) verifyComposite(ctx context.Context, b NamedBackend, req *backends.SignRequest,
	resp *backends.SignResponse) error {
	cr, ok := b.Backend.(backends.CompositeRooter)
	if !ok {
		return fmt.Errorf("%w: backend %s: returned a composite leaf but has no composite roots",
			backends.ErrBadChain, b.Name)
	}
	roots, err := cr.CompositeRoots(ctx)
	if err != nil {
		return fmt.Errorf("%w: backend %s: composite roots: %w", backends.ErrUnavailable, b.Name, err)
	}
	leaf := resp.Chain[0]
	now := i.clock()
	if now.Before(leaf.NotBefore) {
		now = leaf.NotBefore
	}
	if err := composite.VerifyChain(resp.Chain, roots, now); err != nil {
		return fmt.Errorf("%w: backend %s: the composite leaf does not verify to the backend's composite roots: %w",
			backends.ErrBadChain, b.Name, err)
	}
	i.noteShortened(b.Name, req, leaf)
	return nil
}

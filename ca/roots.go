package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/meshca/meshca/backends"
)

// servedRoots is what one backend served from Roots (and, for an ML-DSA CA, PostQuantumRoots) at one moment.
type servedRoots struct {
	classical, pq []*x509.Certificate
	err           error
}

// rootsOf takes a snapshot of the roots b serves now.
func rootsOf(ctx context.Context, b NamedBackend) servedRoots {
	var s servedRoots
	s.classical, s.err = b.Backend.Roots(ctx)
	if pq, ok := b.Backend.(backends.PostQuantumRooter); ok && s.err == nil {
		s.pq, s.err = pq.PostQuantumRoots(ctx)
	}
	return s
}

// forLeaf returns the roots leaf may chain to: an ML-DSA leaf chains to the ML-DSA roots only.
func (s servedRoots) forLeaf(b NamedBackend, leaf *x509.Certificate) ([]*x509.Certificate, error) {
	if s.err != nil {
		return nil, s.err
	}
	if _, ok := b.Backend.(backends.PostQuantumRooter); ok && leaf.PublicKeyAlgorithm == x509.MLDSA {
		return s.pq, nil
	}
	return s.classical, nil
}

// anchors returns the roots to verify resp's chain against. A backend that names the roots it signed under
// (SignResponse.Roots) gets them, but only where it served each one from Roots too, just before Sign (before)
// or just after: a CA reloaded in between cannot make a good leaf look foreign, and no backend chooses its own
// anchors. A backend that names none is checked against what Roots serves after Sign.
func anchors(ctx context.Context, b NamedBackend, resp *backends.SignResponse,
	before servedRoots) ([]*x509.Certificate, error) {
	leaf := resp.Chain[0]
	prev, prevErr := before.forLeaf(b, leaf)
	if len(resp.Roots) > 0 && prevErr == nil && allServed(resp.Roots, prev, nil) {
		return resp.Roots, nil
	}
	now, err := rootsOf(ctx, b).forLeaf(b, leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: backend %s: roots: %w", backends.ErrUnavailable, b.Name, err)
	}
	if len(resp.Roots) == 0 {
		return now, nil
	}
	if !allServed(resp.Roots, prev, now) {
		return nil, fmt.Errorf("%w: backend %s: the roots it signed under are not roots it serves",
			backends.ErrBadChain, b.Name)
	}
	return resp.Roots, nil
}

// allServed reports whether every one of claimed is in before or in after.
func allServed(claimed, before, after []*x509.Certificate) bool {
	for _, c := range claimed {
		if !isRoot(c, before) && !isRoot(c, after) {
			return false
		}
	}
	return true
}

// Roots returns the union of every backend's trust anchors, without duplicates, primary backend first.
func (i *Issuer) Roots(ctx context.Context) ([]*x509.Certificate, error) {
	out, errs := i.rootUnion(func(b NamedBackend) ([]*x509.Certificate, error) { return b.Backend.Roots(ctx) })
	if len(out) == 0 {
		return nil, fmt.Errorf("ca: no roots available: %w", errors.Join(errs...))
	}
	return out, nil
}

// rootUnion returns the union of the certificates roots gives for each backend, without duplicates, primary
// backend first, and one error per backend that failed, naming it.
func (i *Issuer) rootUnion(roots func(NamedBackend) ([]*x509.Certificate, error)) ([]*x509.Certificate, []error) {
	var out []*x509.Certificate
	var errs []error
	for _, b := range i.backends {
		rs, err := roots(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("backend %s: %w", b.Name, err))
			continue
		}
		for _, r := range rs {
			if !isRoot(r, out) {
				out = append(out, r)
			}
		}
	}
	return out, errs
}

// IssuingCAs returns the CA certificate each backend signs workload certificates with (the first of its
// backends.Chainer chain), without duplicates. A backend that cannot say contributes nothing.
func (i *Issuer) IssuingCAs(ctx context.Context) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	var errs []error
	for _, b := range i.backends {
		ch, ok := b.Backend.(backends.Chainer)
		if !ok {
			continue
		}
		chain, err := ch.CAChain(ctx)
		if err != nil || len(chain) == 0 {
			errs = append(errs, fmt.Errorf("backend %s: issuing CA: %v", b.Name, err))
			continue
		}
		if !isRoot(chain[0], out) {
			out = append(out, chain[0])
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ca: no issuing CA known: %w", errors.Join(errs...))
	}
	return out, nil
}

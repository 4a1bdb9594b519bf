package ca

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meshca/meshca/backends"
)

// sign sends an already authorised request to the backends bs in order, failing over when one is
// unavailable, and verifies the returned chain. It returns the name of the backend that signed.
func (i *Issuer) sign(ctx context.Context, bs []NamedBackend,
	req *backends.SignRequest) (*backends.SignResponse, string, error) {
	var errs []error
	for n, b := range bs {
		resp, err := i.signWith(ctx, b, req)
		if err == nil {
			return resp, b.Name, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, backends.ErrUnavailable) || ctx.Err() != nil {
			break
		}
		if n+1 < len(bs) {
			i.m.failovers.WithLabelValues(b.Name).Inc()
			i.log.Warn("backend unavailable; trying the next one",
				"backend", b.Name, "next", bs[n+1].Name, "error", err)
		}
	}
	return nil, "", errors.Join(errs...)
}

func (i *Issuer) signWith(ctx context.Context, b NamedBackend,
	req *backends.SignRequest) (*backends.SignResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	start := time.Now()
	before := rootsOf(ctx, b) // with SignResponse.Roots, what a CA reloaded during Sign served (anchors)
	resp, err := b.Backend.Sign(ctx, req)
	if err == nil {
		err = i.verify(ctx, b, req, resp, before)
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, backends.ErrUnavailable) {
		err = fmt.Errorf("%w: backend %s: %w", backends.ErrUnavailable, b.Name, err)
	}
	result := "ok"
	if err != nil {
		result = Reason(err)
	}
	i.m.signDuration.WithLabelValues(b.Name, result).Observe(time.Since(start).Seconds())
	return resp, err
}

// verify checks a backend's answer before it leaves meshca: the leaf is exactly the workload certificate that
// was requested (backends.CheckLeafFrom) and the chain verifies to the roots the backend signed under
// (anchors).
func (i *Issuer) verify(ctx context.Context, b NamedBackend, req *backends.SignRequest,
	resp *backends.SignResponse, before servedRoots) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: backend %s: %s", backends.ErrBadChain, b.Name, fmt.Sprintf(format, args...))
	}
	if resp == nil {
		return bad("no chain returned")
	}
	if err := backends.CheckLeafFrom(b.Backend, req, resp.Chain); err != nil {
		return fmt.Errorf("backend %s: %w", b.Name, err)
	}
	leaf := resp.Chain[0]
	if backends.IsComposite(leaf) { // crypto/x509 cannot verify composite signatures: ca/composite.go
		return i.verifyComposite(ctx, b, req, resp)
	}
	roots, err := anchors(ctx, b, resp, before)
	if err != nil {
		return err
	}
	if !isRoot(resp.Chain[len(resp.Chain)-1], roots) {
		return bad("chain does not end with one of the backend's roots")
	}
	now := i.clock()
	if now.Before(leaf.NotBefore) {
		now = leaf.NotBefore
	}
	if err := i.chains.verify(resp.Chain, roots, now, resp.SignatureChecked()); err != nil {
		return bad("leaf does not verify to the backend's roots: %v", err)
	}
	i.noteShortened(b.Name, req, leaf)
	return nil
}

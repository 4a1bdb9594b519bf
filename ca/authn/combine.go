package authn

import (
	"context"
	"errors"
	"fmt"
)

// Combine says how the token issuers verified locally (Config.TokenIssuers) and the API-server
// authenticators of Deps.Then (TokenReview) share tokens when both are configured. It must be said: neither
// may silently shadow the other.
type Combine string

const (
	// CombineOtherIssuers verifies tokens of a configured issuer locally only (they keep working while the
	// API server is down) and sends every other token to Deps.Then (e.g. remote clusters' tokens).
	CombineOtherIssuers Combine = "otherIssuers"
	// CombineConfirm verifies tokens of a configured issuer locally and then has Deps.Then confirm them
	// (cached), so that a token whose service account or pod was deleted is refused; every other token goes
	// to Deps.Then alone.
	CombineConfirm Combine = "confirm"
)

// Validate reports whether c is one of the known ways, or empty.
func (c Combine) Validate() error {
	switch c {
	case "", CombineOtherIssuers, CombineConfirm:
		return nil
	}
	return fmt.Errorf("%q is not %q or %q", string(c), CombineOtherIssuers, CombineConfirm)
}

// confirmed verifies a token locally, then has review confirm it; a token of an issuer local does not know
// goes to review alone.
type confirmed struct {
	local  Authenticator // a JWT that passes on unknown issuers
	review Authenticator
}

// Authenticate implements Authenticator.
func (c *confirmed) Authenticate(ctx context.Context, req *Request) (*Caller, error) {
	caller, err := c.local.Authenticate(ctx, req)
	if errors.Is(err, ErrNoCredential) && req.Token != "" {
		return c.review.Authenticate(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	r, err := c.review.Authenticate(ctx, req)
	if err != nil {
		return nil, err
	}
	if r.Namespace != caller.Namespace || r.ServiceAccount != caller.ServiceAccount ||
		(caller.PodUID != "" && r.PodUID != caller.PodUID) || r.ClusterID != caller.ClusterID {
		return nil, fmt.Errorf("%w: the API server's review of the token disagrees with its verified claims",
			ErrUnauthenticated)
	}
	out := *caller
	out.Method = caller.Method + "+" + r.Method
	return &out, nil
}

package authn_test

import (
	"context"
	"errors"
	"testing"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
)

// TestTokenWithoutExpiryIsRefused: a correctly signed token for the right audience that never expires is refused;
// Kubernetes' bound service-account tokens always carry exp, and a token without one would be valid forever.
func TestTokenWithoutExpiryIsRefused(t *testing.T) {
	d, j := newDevJWT(t)
	good, err := d.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Authenticate(context.Background(), &authn.Request{Token: good}); err != nil {
		t.Fatalf("the same token with exp: %v", err)
	}
	tok, err := d.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep", NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := j.Authenticate(context.Background(), &authn.Request{Token: tok})
	if !errors.Is(err, authn.ErrUnauthenticated) {
		t.Fatalf("Authenticate = %+v, %v; want ErrUnauthenticated", c, err)
	}
}

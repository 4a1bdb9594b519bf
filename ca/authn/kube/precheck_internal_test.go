package kube

import (
	"errors"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/authn"
)

// FuzzPrecheck: no input panics the precheck, and every refusal is ErrUnauthenticated.
func FuzzPrecheck(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YTpiIiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2ln")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Add("not-a-token")
	f.Fuzz(func(t *testing.T, s string) {
		if err := precheck(s, time.Now(), authn.DefaultMaxTokenLifetime); err != nil &&
			!errors.Is(err, authn.ErrUnauthenticated) {
			t.Fatalf("precheck: %v is not ErrUnauthenticated", err)
		}
	})
}

// TestPrecheck: each structural refusal on its own, and the edges that are still sent to the API server (an
// expiry exactly the leeway ago, a lifetime of exactly the maximum).
func TestPrecheck(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	sa := "system:serviceaccount:ns:sa"
	tests := []struct {
		name string
		c    tokenClaims
		raw  string // instead of c
		want error
	}{
		{"a live service-account token passes", tokenClaims{sub: sa, iat: now, exp: now.Add(time.Hour)}, "", nil},
		{"a token that is not a JWS is refused", tokenClaims{}, "a.b", authn.ErrUnauthenticated},
		{"a token without exp is refused", tokenClaims{sub: sa, iat: now}, "", authn.ErrUnauthenticated},
		{"a token that expired more than the leeway ago is refused",
			tokenClaims{sub: sa, iat: now.Add(-time.Hour), exp: now.Add(-expiryLeeway - time.Second)}, "",
			authn.ErrUnauthenticated},
		{"a token that expired exactly the leeway ago is still sent",
			tokenClaims{sub: sa, iat: now.Add(-time.Hour), exp: now.Add(-expiryLeeway)}, "", nil},
		{"a token valid longer than the maximum in all is refused",
			tokenClaims{sub: sa, iat: now, exp: now.Add(24*time.Hour + time.Second)}, "", authn.ErrUnauthenticated},
		{"a token valid exactly the maximum in all is sent",
			tokenClaims{sub: sa, iat: now, exp: now.Add(24 * time.Hour)}, "", nil},
		{"without iat the lifetime counts from now",
			tokenClaims{sub: sa, exp: now.Add(24*time.Hour + time.Second)}, "", authn.ErrUnauthenticated},
		{"a subject that is not a service account is refused",
			tokenClaims{sub: "system:node:n1", iat: now, exp: now.Add(time.Hour)}, "", authn.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.raw
			if tok == "" {
				tok = signToken(t, tt.c)
			}
			err := precheck(tok, now, 24*time.Hour)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("precheck: %v, want %v", err, tt.want)
			}
		})
	}
}

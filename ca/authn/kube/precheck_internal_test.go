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

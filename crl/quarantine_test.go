package crl_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
)

// A quarantine ends at the whole second at or after the time asked: never earlier, at most a second later.
func TestQuarantineEndsAtTheNextWholeSecond(t *testing.T) {
	e := newEnv(t)
	whole := e.clk.Now().Add(time.Hour).Truncate(time.Second)
	for _, tc := range []struct {
		name       string
		until, end time.Time
	}{
		{"a whole second is kept as it is", whole, whole},
		{"a nanosecond past a second rounds up to the next", whole.Add(time.Nanosecond), whole.Add(time.Second)},
		{"a nanosecond before a second rounds up to it", whole.Add(-time.Nanosecond), whole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.reg.Quarantine(context.Background(), idA, tc.until); err != nil {
				t.Fatal(err)
			}
			if got, ok := e.reg.Quarantined(idA, e.clk.Now()); !ok || !got.Equal(tc.end) {
				t.Fatalf("quarantined %v until %s, want until %s", ok, got, tc.end)
			}
		})
	}
}

func TestRevokeACertificateWithoutURI(t *testing.T) {
	e := newEnv(t)
	res, err := e.reg.Revoke(context.Background(), crl.RevokeRequest{Certificate: e.pki.Inter})
	if err != nil {
		t.Fatal(err)
	}
	if res.Identity != "" || res.CA != crl.IDOf(e.pki.Root) {
		t.Fatalf("entry identity %q, CA %s; want none and the root", res.Identity, res.CA)
	}
}

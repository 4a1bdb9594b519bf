package ca_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// With policy.commonName the leaf's subject is CN=<SPIFFE ID> when the ID fits X.509's 64-character bound on
// a common name, and empty when it does not; without it the subject is always empty.
func TestCommonNameOnlyWhenItFits(t *testing.T) {
	const prefix = "spiffe://cluster.local/ns/default/sa/" // 38 characters
	tests := []struct {
		name   string
		on     bool
		sa     string
		wantCN bool
	}{
		{"a short ID", true, "sleep", true},
		{"an ID of exactly 64 characters", true, strings.Repeat("s", 64-len(prefix)), true},
		{"an ID of 65 characters", true, strings.Repeat("s", 65-len(prefix)), false},
		{"commonName off", false, "sleep", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := catest.FileCA(t)
			i, dev := newIssuerWith(t, ca.Config{Policy: ca.Policy{CommonName: tt.on},
				Backends:   []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, nil)}},
				Registerer: prometheus.NewRegistry()})
			tok, err := dev.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: tt.sa})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := catest.WorkloadCSR(t, prefix+tt.sa)
			res, err := i.Issue(context.Background(), &ca.Request{Credentials: authn.Request{Token: tok}, CSR: c})
			if err != nil {
				t.Fatal(err)
			}
			cn := res.Chain[0].Subject.CommonName
			if want := map[bool]string{true: prefix + tt.sa}[tt.wantCN]; cn != want {
				t.Fatalf("CN %q, want %q", cn, want)
			}
		})
	}
}

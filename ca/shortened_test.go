package ca_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
)

// A leaf a backend issued markedly shorter than requested (the file backend caps it at its CA's expiry) is
// still issued, and counted as backend_shortened; one cut by less than the slack is not.
func TestShortenedLeavesAreCounted(t *testing.T) {
	g, err := file.Generate(file.GenerateOptions{Organization: catest.TrustDomain, IntermediateTTL: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cacerts")
	if err := g.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	i, dev := newIssuerWith(t, ca.Config{Registerer: reg,
		Backends: []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, nil)}}})
	for _, tt := range []struct {
		ttl  time.Duration
		want float64
	}{{2 * time.Hour, 0}, {12 * time.Hour, 1}} {
		r := request(t, dev)
		r.TTL = tt.ttl
		res, err := i.Issue(context.Background(), r)
		if err != nil {
			t.Fatalf("a %s request: %v", tt.ttl, err)
		}
		if res.Chain[0].NotAfter.After(g.Intermediate.NotAfter) {
			t.Fatal("the leaf outlives its issuing CA")
		}
		if got := adjusted(t, reg, "backend_shortened"); got != tt.want {
			t.Fatalf("after a %s request against a CA living 3h: backend_shortened = %g, want %g", tt.ttl, got,
				tt.want)
		}
	}
}

// A serving certificate needs a positive lifetime.
func TestServingNeedsAPositiveLifetime(t *testing.T) {
	dir, _ := catest.FileCA(t)
	i, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, nil)}},
		Authenticator: authn.Chain{}, Policy: ca.Policy{TrustDomain: "cluster.local"},
		Logger: catest.DiscardLogger(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, ttl := range []time.Duration{0, -time.Minute} {
		res, err := i.IssueServing(context.Background(), &ca.ServingRequest{Namespace: "istio-system",
			ServiceAccount: "meshca", CSR: servingCSR(t, "meshca.istio-system.svc"), TTL: ttl})
		if err == nil || res != nil {
			t.Fatalf("a serving certificate for %s was issued", ttl)
		}
	}
	if _, err := i.IssueServing(context.Background(), &ca.ServingRequest{Namespace: "istio-system",
		ServiceAccount: "meshca", CSR: servingCSR(t, "meshca.istio-system.svc"), TTL: time.Hour}); err != nil {
		t.Fatal(errors.Join(errors.New("a serving certificate for 1h"), err))
	}
}

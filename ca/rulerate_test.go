package ca_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/internal/devtoken"
)

// A policy rule's rate applies per identity it selects: beyond the burst a request is refused as rate limited
// before any backend is asked; another identity under the same rule has its own budget, and identities the
// rule does not select are not limited by it.
func TestRuleRateIsPerIdentity(t *testing.T) {
	dir, _ := catest.FileCA(t)
	b := &faulty{Backend: catest.FileBackend(t, dir, nil), t: t}
	i, dev := newIssuerWith(t, ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: b}},
		Rules: policy.Config{Rules: []policy.Rule{{Name: "slow", Match: policy.Match{Namespaces: []string{"batch"}},
			Rate: &policy.Rate{PerSecond: 0.001, Burst: 2}}}},
		Registerer: prometheus.NewRegistry()})
	issue := func(ns, sa string) error {
		tok, err := dev.Mint(devtoken.Claims{Namespace: ns, ServiceAccount: sa})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/"+ns+"/sa/"+sa)
		_, err = i.Issue(context.Background(), &ca.Request{Credentials: authn.Request{Token: tok}, CSR: c})
		return err
	}
	for n := range 2 {
		if err := issue("batch", "job"); err != nil {
			t.Fatalf("request %d within the rule's burst: %v", n+1, err)
		}
	}
	calls := b.calls
	if err := issue("batch", "job"); !errors.Is(err, ca.ErrRateLimited) {
		t.Fatalf("the third request of batch/job: %v, want ErrRateLimited", err)
	}
	if b.calls != calls {
		t.Fatal("a backend was asked for a rate-limited request")
	}
	if err := issue("batch", "other"); err != nil {
		t.Fatalf("another identity under the same rule: %v, want its own budget", err)
	}
	for n := range 3 {
		if err := issue("default", "sleep"); err != nil {
			t.Fatalf("request %d of an identity no rule limits: %v", n+1, err)
		}
	}
}

// nothing is a backend that answers without error and without a certificate.
type nothing struct{ backends.Backend }

func (nothing) Sign(context.Context, *backends.SignRequest) (*backends.SignResponse, error) {
	return nil, nil
}

// A backend that answers nothing is a bad chain, not a panic or an empty success.
func TestABackendAnsweringNothingIsABadChain(t *testing.T) {
	dir, _ := catest.FileCA(t)
	i, dev := newIssuer(t, prometheus.NewRegistry(),
		ca.NamedBackend{Name: "file", Backend: nothing{catest.FileBackend(t, dir, nil)}})
	res, err := i.Issue(context.Background(), request(t, dev))
	if !errors.Is(err, backends.ErrBadChain) || res != nil {
		t.Fatalf("Issue = %v, %v; want ErrBadChain", res != nil, err)
	}
}

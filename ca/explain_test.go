package ca_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/csr"
)

// TestIssuerExplain: the issuer explains under the rules in force, and a SetRules is seen by the next answer.
func TestIssuerExplain(t *testing.T) {
	dir, _ := catest.FileCA(t)
	i, _ := newIssuer(t, prometheus.NewRegistry(), ca.NamedBackend{Name: "mesh",
		Backend: catest.FileBackend(t, dir, nil)})
	id, err := i.Mesh().Identity("default", "sleep")
	if err != nil {
		t.Fatal(err)
	}
	d := i.Explain(ca.Ask{Identity: id})
	if !d.Allowed || d.Err != nil || len(d.Backends) != 1 || d.Backends[0] != "mesh" {
		t.Fatalf("without rules: got %+v, want allowed, signed by mesh", d)
	}
	if err := i.SetRules(policy.Config{Rules: []policy.Rule{{Name: "freeze",
		Match: policy.Match{Namespaces: []string{"default"}}, Deny: &policy.Deny{Reason: "incident 7"}}}}); err != nil {
		t.Fatal(err)
	}
	d = i.Explain(ca.Ask{Identity: id})
	if d.Allowed || d.Rule != "freeze" || !errors.Is(d.Err, policy.ErrDenied) {
		t.Fatalf("after SetRules: got %+v (err %v), want denied by freeze", d, d.Err)
	}
	other, _ := i.Mesh().Identity("other", "sleep")
	if d := i.Explain(ca.Ask{Identity: other, KeyType: csr.KeyTypes()[0]}); !d.Allowed {
		t.Fatalf("another namespace: got %+v (err %v), want allowed", d, d.Err)
	}
}

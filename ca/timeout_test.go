package ca_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/internal/devtoken"
)

// hanging is a backend whose Sign waits for its deadline and then fails with a plain error, as a client
// library that does not say "unavailable" would.
type hanging struct{ backends.Backend }

func (hanging) Sign(ctx context.Context, _ *backends.SignRequest) (*backends.SignResponse, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("hanging: %v", ctx.Err())
}

// A backend that runs out its sign timeout counts as unavailable, whatever its error says, so the request
// fails over to the next backend instead of failing.
func TestATimedOutBackendFailsOver(t *testing.T) {
	dirA, _ := catest.FileCA(t)
	dirB, genB := catest.FileCA(t)
	i, dev := newIssuerWith(t, ca.Config{SignTimeout: 200 * time.Millisecond, Registerer: prometheus.NewRegistry(),
		Backends: []ca.NamedBackend{{Name: "stuck", Backend: hanging{catest.FileBackend(t, dirA, nil)}},
			{Name: "spare", Backend: catest.FileBackend(t, dirB, nil)}}})
	res, err := i.Issue(context.Background(), request(t, dev))
	if err != nil {
		t.Fatalf("with the first backend timing out: %v, want the second to sign", err)
	}
	if res.Backend != "spare" || !res.Chain[len(res.Chain)-1].Equal(genB.Root) {
		t.Fatalf("signed by %s, want spare", res.Backend)
	}
}

// Issuer.Roots is the union of the backends' roots without duplicates; a backend down does not hide the
// others', and every backend down is an error.
func TestRootsAreTheBackendsUnion(t *testing.T) {
	dirA, genA := catest.FileCA(t)
	dirB, genB := catest.FileCA(t)
	a, b := catest.FileBackend(t, dirA, nil), catest.FileBackend(t, dirB, nil)
	down := brokenRoots{a}
	for _, tt := range []struct {
		name string
		bs   []backends.Backend
		want int
	}{
		{"two backends, two roots", []backends.Backend{a, b}, 2},
		{"one backend named twice, one root", []backends.Backend{a, a}, 1},
		{"one backend down", []backends.Backend{down, b}, 1},
		{"every backend down", []backends.Backend{down, down}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var nbs []ca.NamedBackend
			for n, be := range tt.bs {
				nbs = append(nbs, ca.NamedBackend{Name: fmt.Sprintf("b%d", n), Backend: be})
			}
			i, _ := newIssuerWith(t, ca.Config{Backends: nbs, Registerer: prometheus.NewRegistry()})
			roots, err := i.Roots(context.Background())
			if len(roots) != tt.want || (tt.want == 0) != (err != nil) {
				t.Fatalf("Roots = %d, %v; want %d", len(roots), err, tt.want)
			}
			for _, r := range roots {
				if !r.Equal(genA.Root) && !r.Equal(genB.Root) {
					t.Fatal("a root no backend serves")
				}
			}
		})
	}
}

// brokenRoots is a backend whose roots cannot be read.
type brokenRoots struct{ backends.Backend }

func (brokenRoots) Roots(context.Context) ([]*x509.Certificate, error) {
	return nil, backends.ErrUnavailable
}

// Every decision of a named rule is counted by rule and outcome.
func TestRuleDecisionsAreCounted(t *testing.T) {
	dir, _ := catest.FileCA(t)
	reg := prometheus.NewRegistry()
	i, dev := newIssuerWith(t, ca.Config{Registerer: reg,
		Backends: []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, nil)}}})
	if err := i.SetRules(policy.Config{Rules: []policy.Rule{{Name: "freeze",
		Match: policy.Match{Namespaces: []string{"frozen"}}, Deny: &policy.Deny{Reason: "incident"}},
		{Name: "open", Match: policy.Match{Namespaces: []string{"default"}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := i.Issue(context.Background(), request(t, dev)); err != nil {
		t.Fatal(err)
	}
	r := request(t, dev)
	tok, _ := dev.Mint(devtoken.Claims{Namespace: "frozen", ServiceAccount: "sleep"})
	r.Credentials.Token = tok
	r.CSR, _ = catest.WorkloadCSR(t, "spiffe://cluster.local/ns/frozen/sa/sleep")
	if _, err := i.Issue(context.Background(), r); !errors.Is(err, policy.ErrDenied) {
		t.Fatalf("a frozen namespace: %v, want ErrDenied", err)
	}
	for _, want := range []struct {
		rule, decision string
	}{{"open", "allow"}, {"freeze", "deny"}} {
		if got := decisions(t, reg, want.rule, want.decision); got != 1 {
			t.Errorf("meshca_policy_decisions_total{rule=%q,decision=%q} = %g, want 1", want.rule, want.decision, got)
		}
	}
}

// decisions is meshca_policy_decisions_total{rule, decision} in reg, 0 when absent.
func decisions(t *testing.T, reg *prometheus.Registry, rule, decision string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "meshca_policy_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["rule"] == rule && labels["decision"] == decision {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

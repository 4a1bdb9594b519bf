package ca_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// countedIssuer is an issuer over a file backend with limits, and the backend's call counter.
func countedIssuer(t *testing.T, limits ca.Limits) (*ca.Issuer, *devtoken.Minter, *faulty) {
	t.Helper()
	dir, _ := catest.FileCA(t)
	b := &faulty{Backend: catest.FileBackend(t, dir, nil), t: t}
	i, dev := limitedIssuer(t, limits, nil, b)
	return i, dev, b
}

// The per-caller rate charges a bound token's pod, so the pods of one service account each have their own
// budget, and a caller without pod claims is charged per identity; beyond the burst a request is refused
// before any backend is asked.
func TestPerCallerRateChargesPodsApart(t *testing.T) {
	i, dev, b := countedIssuer(t, ca.Limits{PerCallerRate: 0.001, PerCallerBurst: 2})
	issue := func(pod string) error {
		tok, err := dev.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep", PodName: pod,
			PodUID: pod + "-uid", NodeName: "node-a"})
		if err != nil {
			t.Fatal(err)
		}
		if pod == "" {
			return errorOf(i.Issue(context.Background(), request(t, dev)))
		}
		c, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/sleep")
		return errorOf(i.Issue(context.Background(), &ca.Request{Credentials: authn.Request{Token: tok}, CSR: c}))
	}
	for _, who := range []string{"sleep-1", "sleep-2", ""} { // two pods, then the identity without pod claims
		for n := range 2 {
			if err := issue(who); err != nil {
				t.Fatalf("%q request %d within the burst: %v", who, n+1, err)
			}
		}
		calls := b.calls
		if err := issue(who); !errors.Is(err, ca.ErrRateLimited) {
			t.Fatalf("%q beyond the burst: %v, want ErrRateLimited", who, err)
		}
		if b.calls != calls {
			t.Fatal("a backend was asked for a rate-limited request")
		}
	}
}

// Failed authentications are charged to the source address: once it has used up its allowance, even a
// good credential from there is refused before it is checked, while other addresses and in-process callers
// (no address) go on.
func TestFailedAuthenticationsAreChargedToTheSource(t *testing.T) {
	i, dev, _ := countedIssuer(t, ca.Limits{FailedAuthnRate: 0.001, FailedAuthnBurst: 2})
	good := func(peer string) *ca.Request {
		r := request(t, dev)
		r.Peer = peer
		return r
	}
	bad := func(peer string) *ca.Request {
		r := good(peer)
		r.Credentials.Token += "x"
		return r
	}
	const attacker, neighbour = "10.0.0.1:40000", "10.0.0.2:40000"
	for n := range 2 {
		if err := errorOf(i.Issue(context.Background(), bad(attacker))); !errors.Is(err, authn.ErrUnauthenticated) {
			t.Fatalf("bad credential %d: %v, want ErrUnauthenticated", n+1, err)
		}
	}
	if err := errorOf(i.Issue(context.Background(), good("10.0.0.1:40001"))); !errors.Is(err, ca.ErrTooManyFailures) {
		t.Fatalf("a good credential from the same host after the allowance: %v, want ErrTooManyFailures", err)
	}
	if err := errorOf(i.Issue(context.Background(), good(neighbour))); err != nil {
		t.Fatalf("another address: %v", err)
	}
	for range 3 {
		_, _ = i.Issue(context.Background(), bad(""))
	}
	if err := errorOf(i.Issue(context.Background(), good(""))); err != nil {
		t.Fatalf("an in-process caller after failures: %v, want no source to charge", err)
	}
}

func errorOf(_ *ca.Result, err error) error { return err }

// A node agent acting for workloads (ImpersonatedIdentity) is charged per workload, so a node full of pods
// starting at once is not throttled as one caller; each workload still has only its own budget.
func TestANodeAgentIsChargedPerWorkload(t *testing.T) {
	dir, _ := catest.FileCA(t)
	i, dev := impersonationIssuer(t, ca.Config{Limits: ca.Limits{PerCallerRate: 0.001, PerCallerBurst: 2},
		Impersonator: &nodeRule{}, Backends: []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir,
			nil)}}, Logger: catest.DiscardLogger(), Registerer: prometheus.NewRegistry()})
	tok, err := dev.Mint(devtoken.Claims{Namespace: "istio-system", ServiceAccount: "ztunnel", PodName: "ztunnel-0",
		PodUID: "ztunnel-0-uid", NodeName: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	actFor := func(sa string) error {
		id := "spiffe://cluster.local/ns/default/sa/" + sa
		c, _ := catest.WorkloadCSR(t, id)
		return errorOf(i.Issue(context.Background(), &ca.Request{Credentials: authn.Request{Token: tok}, CSR: c,
			ImpersonatedIdentity: id}))
	}
	for _, sa := range []string{"a", "b", "c"} {
		for n := range 2 {
			if err := actFor(sa); err != nil {
				t.Fatalf("ztunnel for %s, request %d: %v; want each workload its own budget", sa, n+1, err)
			}
		}
	}
	if err := actFor("a"); !errors.Is(err, ca.ErrRateLimited) {
		t.Fatalf("ztunnel for a, beyond its budget: %v, want ErrRateLimited", err)
	}
}

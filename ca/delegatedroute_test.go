package ca_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/policy"
)

// A registration authority's signer routing narrows the backends a policy rule allows; it never widens them.
// The request goes to the backends both allow, in the rule's failover order, and is refused (counted and
// audited) when they have none in common.
func TestDelegatedRoutingIntersectsPolicyBackends(t *testing.T) {
	reg := prometheus.NewRegistry()
	var audit bytes.Buffer
	named := map[string]*faulty{}
	var bs []ca.NamedBackend
	for _, n := range []string{"first", "second", "third"} {
		dir, _ := catest.FileCA(t)
		named[n] = &faulty{Backend: catest.FileBackend(t, dir, nil), t: t}
		bs = append(bs, ca.NamedBackend{Name: n, Backend: named[n]})
	}
	i, err := ca.New(ca.Config{
		Backends: bs, Authenticator: authn.Chain{}, Policy: ca.Policy{TrustDomain: "cluster.local"},
		// Payments may be signed by third and then second, never by first.
		Rules: policy.Config{Rules: []policy.Rule{{Name: "payments", Match: policy.Match{Namespaces: []string{"pay"}},
			Backends: []string{"third", "second"}}}},
		Logger: catest.DiscardLogger(), Audit: slog.New(slog.NewJSONHandler(&audit, nil)), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	istiod := &authn.Caller{Namespace: "istio-system", ServiceAccount: "istiod", Method: "k8s-csr"}
	ask := func(id string, routed ...string) *ca.DelegatedRequest {
		b, _ := catest.CSR(t, catest.CSROptions{URIs: []string{id}})
		return &ca.DelegatedRequest{Authority: istiod, CSR: b, Backends: routed, Peer: "csr/test"}
	}
	const pay, shop = "spiffe://cluster.local/ns/pay/sa/api", "spiffe://cluster.local/ns/shop/sa/cart"

	signed := []struct {
		name    string
		req     *ca.DelegatedRequest
		down    string // a backend that is unavailable for this case
		backend string
	}{
		{"a signer routed to every backend gets the rule's first", ask(pay), "", "third"},
		{"a signer routed to both of the rule's backends follows the rule's order, not the configured one",
			ask(pay, "second", "third"), "", "third"},
		{"failover follows the rule's order within the signer's backends", ask(pay, "first", "second", "third"),
			"third", "second"},
		{"a signer routed to one of the rule's backends gets that one", ask(pay, "second", "first"), "", "second"},
		{"a request no rule selects goes to the signer's backends", ask(shop, "first"), "", "first"},
	}
	for _, c := range signed {
		t.Run(c.name, func(t *testing.T) {
			if c.down != "" {
				named[c.down].fail = backends.ErrUnavailable
				defer func() { named[c.down].fail = nil }()
			}
			res, err := i.IssueDelegated(context.Background(), c.req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Backend != c.backend {
				t.Errorf("signed by %s, want %s", res.Backend, c.backend)
			}
		})
	}

	t.Run("a signer routed only to backends the rule does not allow is refused", func(t *testing.T) {
		calls := named["first"].calls
		audit.Reset()
		_, err := i.IssueDelegated(context.Background(), ask(pay, "first"))
		if !errors.Is(err, ca.ErrBackendNotAllowed) || !errors.Is(err, ca.ErrPermissionDenied) {
			t.Fatalf("got %v, want ErrBackendNotAllowed (a permission denial)", err)
		}
		if named["first"].calls != calls {
			t.Error("the backend the rule does not allow was asked to sign")
		}
		class := ca.Classify(err)
		if class.Outcome != ca.OutcomeRejected || class.Reason != "backend_not_allowed" {
			t.Errorf("classified %s/%s, want rejected/backend_not_allowed", class.Outcome, class.Reason)
		}
		for _, want := range []string{"payments", "first", "third, second"} {
			if !strings.Contains(class.CallerMessage(err), want) {
				t.Errorf("message %q does not name %q", class.CallerMessage(err), want)
			}
		}
		if v, _ := sample(t, reg, "meshca_csr_requests_total",
			map[string]string{"result": "rejected", "reason": "backend_not_allowed"}); v != 1 {
			t.Errorf("meshca_csr_requests_total{reason=backend_not_allowed} = %v, want 1", v)
		}
		for _, want := range []string{`"reason":"backend_not_allowed"`, `"rule":"payments"`,
			`"caller":"ns/istio-system/sa/istiod"`, `"identity":"` + pay + `"`} {
			if !strings.Contains(audit.String(), want) {
				t.Errorf("audit record lacks %s:\n%s", want, audit.String())
			}
		}
	})
}

package ca_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/internal/devtoken"
)

// nodeRule decides impersonation as a node authorizer would, without an API server: istio-system/ztunnel
// may act for workloads in namespace "default" except service account "unreachable", for which the decision
// cannot be made. The Kubernetes-backed authorizer is tested in ca/authn/kube; this is the core's handling of
// its answers.
type nodeRule struct{ asked []string }

func (n *nodeRule) CheckImpersonation(_ context.Context, caller *authn.Caller, target csr.Identity) error {
	n.asked = append(n.asked, target.String())
	switch {
	case caller.Namespace != "istio-system" || caller.ServiceAccount != "ztunnel":
		return fmt.Errorf("%w: %s is not a node agent", authn.ErrImpersonationDenied, caller.ServiceAccount)
	case target.ServiceAccount == "unreachable":
		return fmt.Errorf("node authorizer: %w", authn.ErrUnavailable)
	case target.Namespace != "default":
		return fmt.Errorf("%w: no such pod on the node", authn.ErrImpersonationDenied)
	}
	return nil
}

// The core's side of ImpersonatedIdentity (ztunnel asking for a workload's certificate): the target must be a
// SPIFFE ID in this mesh (an alias trust domain becomes the canonical one), impersonation must be enabled,
// and the authorizer must allow it; a refusal is PermissionDenied wrapping ErrImpersonationDenied, an
// authorizer that cannot decide is unavailable, and in neither case is a backend asked.
func TestImpersonationDecisions(t *testing.T) {
	const sleep = "spiffe://cluster.local/ns/default/sa/sleep"
	tests := []struct {
		name     string
		off      bool // no Impersonator configured
		callerSA string
		target   string
		csrID    string
		want     error // nil: issued for csrID
		also     error
	}{
		{"ztunnel acts for a pod on its node", false, "ztunnel", sleep, sleep, nil, nil},
		{"a target in the alias trust domain is issued in the canonical one", false, "ztunnel",
			"spiffe://old.local/ns/default/sa/sleep", sleep, nil, nil},
		{"a workload that is not a node agent is refused", false, "sleep", sleep, sleep,
			ca.ErrPermissionDenied, authn.ErrImpersonationDenied},
		{"a target the authorizer refuses", false, "ztunnel", "spiffe://cluster.local/ns/kube-system/sa/admin",
			"spiffe://cluster.local/ns/kube-system/sa/admin", ca.ErrPermissionDenied, authn.ErrImpersonationDenied},
		{"a target in a foreign trust domain", false, "ztunnel", "spiffe://evil.example/ns/default/sa/sleep",
			"spiffe://evil.example/ns/default/sa/sleep", ca.ErrPermissionDenied, authn.ErrImpersonationDenied},
		{"a target that is no SPIFFE ID", false, "ztunnel", "https://cluster.local/ns/default/sa/sleep", sleep,
			ca.ErrInvalidRequest, nil},
		{"impersonation not enabled", true, "ztunnel", sleep, sleep, ca.ErrPermissionDenied,
			authn.ErrImpersonationDenied},
		{"an authorizer that cannot decide", false, "ztunnel", "spiffe://cluster.local/ns/default/sa/unreachable",
			"spiffe://cluster.local/ns/default/sa/unreachable", authn.ErrUnavailable, nil},
		{"a CSR for another workload than the target", false, "ztunnel", sleep,
			"spiffe://cluster.local/ns/default/sa/other", ca.ErrIdentityMismatch, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := catest.FileCA(t)
			b := &faulty{Backend: catest.FileBackend(t, dir, nil), t: t}
			rule := &nodeRule{}
			cfg := ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: b}},
				Logger: catest.DiscardLogger(), Registerer: prometheus.NewRegistry()}
			if !tt.off {
				cfg.Impersonator = rule
			}
			i, dev := impersonationIssuer(t, cfg)
			ns := "istio-system"
			if tt.callerSA != "ztunnel" {
				ns = "default"
			}
			tok, err := dev.Mint(devtoken.Claims{Namespace: ns, ServiceAccount: tt.callerSA})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := catest.WorkloadCSR(t, tt.csrID)
			res, err := i.Issue(context.Background(), &ca.Request{Credentials: authn.Request{Token: tok}, CSR: c,
				ImpersonatedIdentity: tt.target})
			if tt.want != nil {
				if !errors.Is(err, tt.want) || tt.also != nil && !errors.Is(err, tt.also) || res != nil {
					t.Fatalf("Issue = %v, %v; want %v and %v", res != nil, err, tt.want, tt.also)
				}
				if tt.want != ca.ErrIdentityMismatch && b.calls != 0 {
					t.Fatalf("a backend was asked %d times for a refused impersonation", b.calls)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !res.Impersonated || res.Identity.String() != tt.csrID || res.Caller.ServiceAccount != "ztunnel" {
				t.Fatalf("issued %s, impersonated %v, caller %+v; want %s for ztunnel", res.Identity,
					res.Impersonated, res.Caller, tt.csrID)
			}
			if len(rule.asked) != 1 || rule.asked[0] != sleep {
				t.Fatalf("the authorizer was asked %v; want once for the canonical %s", rule.asked, sleep)
			}
			if got := res.Chain[0].URIs; len(got) != 1 || got[0].String() != sleep {
				t.Fatalf("leaf URIs %v, want %s", got, sleep)
			}
		})
	}
}

// Metadata meshca does not understand is refused, never ignored; CertSigner is routed by policy, and a
// request the facade could not decode is invalid.
func TestMetadataIsRefusedUnlessUnderstood(t *testing.T) {
	dir, _ := catest.FileCA(t)
	b := &faulty{Backend: catest.FileBackend(t, dir, nil), t: t}
	i, dev := newIssuerWith(t, ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: b}},
		Registerer: prometheus.NewRegistry()})
	tests := []struct {
		name string
		edit func(*ca.Request)
		want error
	}{
		{"an empty CertSigner, as Istio's CA client sends", func(r *ca.Request) {
			r.Metadata = map[string]string{"CertSigner": ""}
		}, nil},
		{"an unknown metadata key", func(r *ca.Request) { r.Metadata = map[string]string{"ClusterRole": "admin"} },
			ca.ErrInvalidRequest},
		{"a request the facade could not decode", func(r *ca.Request) {
			r.DecodeErr = errors.New("metadata value is not a string")
		}, ca.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.calls
			r := request(t, dev)
			tt.edit(r)
			res, err := i.Issue(context.Background(), r)
			if !errors.Is(err, tt.want) || (err == nil) != (res != nil) {
				t.Fatalf("Issue = %v, %v; want %v", res != nil, err, tt.want)
			}
			if tt.want != nil && b.calls != before {
				t.Fatal("a backend was asked for a refused request")
			}
		})
	}
}

// impersonationIssuer is newIssuerWith for trust domain cluster.local with alias old.local.
func impersonationIssuer(t *testing.T, cfg ca.Config) (*ca.Issuer, *devtoken.Minter) {
	t.Helper()
	cfg.Policy = ca.Policy{TrustDomain: "cluster.local", TrustDomainAliases: []string{"old.local"}}
	return newIssuerWith(t, cfg)
}

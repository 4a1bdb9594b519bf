package policy_test

import (
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/csr"
)

var (
	now      = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	defaults = policy.Defaults{DefaultTTL: 24 * time.Hour, MinTTL: time.Hour, MaxTTL: 24 * time.Hour,
		DNSNameTemplates: []string{"{sa}.{ns}.svc"}}
	backends = []string{"mesh", "finance-ca", "finance-backup"}
)

// rules is the policy of the matcher tables: a freeze, a signer route, a selector, globs and the default.
func rules() policy.Config {
	return policy.Config{Rules: []policy.Rule{
		{Name: "freeze-payments", Match: policy.Match{Namespaces: []string{"payments"}},
			Deny: &policy.Deny{Reason: "incident 42", Until: "2026-12-01T00:00:00Z"}},
		{Name: "lapsed-freeze", Match: policy.Match{Namespaces: []string{"billing"}},
			Deny:     &policy.Deny{Reason: "incident 41", Until: "2026-11-01T00:00:00Z"},
			Lifetime: &policy.Lifetime{Max: 2 * time.Hour}},
		{Name: "finance-signer", Match: policy.Match{Namespaces: []string{"fin*"}, CertSigners: []string{"finance"}},
			Backends: []string{"finance-ca", "finance-backup"}, KeyTypes: []string{"ECDSA-P256", "ECDSA-P384"}},
		{Name: "regulated", Match: policy.Match{NamespaceSelector: &policy.Selector{
			MatchLabels:      map[string]string{"compliance": "pci"},
			MatchExpressions: []policy.Requirement{{Key: "tier", Operator: "NotIn", Values: []string{"dev"}}}}},
			Lifetime: &policy.Lifetime{Default: 4 * time.Hour, Max: 8 * time.Hour},
			Rate:     &policy.Rate{PerSecond: 0.1, Burst: 2}},
		{Name: "web", Match: policy.Match{Namespaces: []string{"web-?"}, ServiceAccounts: []string{"front*"}},
			DNSNameTemplates: []string{"{sa}.{ns}.svc", "{sa}.{ns}.example.com", "admin.{ns}.example.com"},
			NameConstraints: &policy.NameConstraints{
				Allow: &policy.Names{DNS: []string{"*.web-1.svc", "*.web-1.example.com"}},
				Deny:  &policy.Names{DNS: []string{"admin.web-1.example.com"}}}},
		{Name: "td-only", Match: policy.Match{Namespaces: []string{"uri-*"}},
			NameConstraints: &policy.NameConstraints{Allow: &policy.Names{URIs: []string{"other.domain"}}}},
	}}
}

func TestDecide(t *testing.T) {
	e, err := policy.New(defaults, rules(), backends)
	if err != nil {
		t.Fatal(err)
	}
	pci := map[string]string{"compliance": "pci", "tier": "prod"}
	for _, tt := range []struct {
		name     string
		req      policy.Request
		rule     string
		err      error // nil: allowed
		ttl      time.Duration
		backends []string
		dns      []string
	}{
		{"a namespace no rule selects gets the global settings", policy.Request{Namespace: "default",
			ServiceAccount: "sleep"}, policy.DefaultRule, nil, 24 * time.Hour, nil, nil},
		{"a frozen namespace is denied with the rule's reason", policy.Request{Namespace: "payments",
			ServiceAccount: "api"}, "freeze-payments", policy.ErrDenied, 0, nil, nil},
		{"a lapsed freeze no longer denies, and its rule's lifetime applies", policy.Request{Namespace: "billing",
			ServiceAccount: "api", TTL: 12 * time.Hour}, "lapsed-freeze", nil, 2 * time.Hour, nil, nil},
		{"a routed signer goes to its backends in failover order", policy.Request{Namespace: "finance",
			ServiceAccount: "ledger", CertSigner: "finance", KeyType: "ECDSA-P256"}, "finance-signer", nil,
			24 * time.Hour, []string{"finance-ca", "finance-backup"}, nil},
		{"a signer in a namespace its rule does not cover is unknown", policy.Request{Namespace: "default",
			ServiceAccount: "sleep", CertSigner: "finance"}, policy.DefaultRule, policy.ErrUnknownSigner, 0, nil, nil},
		{"a signer no rule names is unknown", policy.Request{Namespace: "finance", ServiceAccount: "ledger",
			CertSigner: "hr"}, policy.DefaultRule, policy.ErrUnknownSigner, 0, nil, nil},
		{"a frozen namespace is denied even when it names a signer", policy.Request{Namespace: "payments",
			ServiceAccount: "api", CertSigner: "finance"}, "freeze-payments", policy.ErrDenied, 0, nil, nil},
		{"a key type outside the rule's list is refused as a key policy error", policy.Request{
			Namespace: "finance", ServiceAccount: "ledger", CertSigner: "finance", KeyType: "RSA-2048"},
			"finance-signer", csr.ErrKeyPolicy, 0, nil, nil},
		{"a namespace without a signer skips the signer rule", policy.Request{Namespace: "finance",
			ServiceAccount: "ledger", KeyType: "RSA-2048"}, policy.DefaultRule, nil, 24 * time.Hour, nil, nil},
		{"a label selector matches the namespace's labels", policy.Request{Namespace: "cards", ServiceAccount: "a",
			NamespaceLabels: pci}, "regulated", nil, 4 * time.Hour, nil, nil},
		{"a NotIn expression excludes a dev tier", policy.Request{Namespace: "cards", ServiceAccount: "a",
			NamespaceLabels: map[string]string{"compliance": "pci", "tier": "dev"}}, policy.DefaultRule, nil,
			24 * time.Hour, nil, nil},
		{"a selector never matches without labels (no cluster)", policy.Request{Namespace: "cards",
			ServiceAccount: "a"}, policy.DefaultRule, nil, 24 * time.Hour, nil, nil},
		{"a long request is clamped to the rule's max", policy.Request{Namespace: "cards", ServiceAccount: "a",
			NamespaceLabels: pci, TTL: 48 * time.Hour}, "regulated", nil, 8 * time.Hour, nil, nil},
		{"a short request is raised to the inherited min", policy.Request{Namespace: "cards", ServiceAccount: "a",
			NamespaceLabels: pci, TTL: time.Minute}, "regulated", nil, time.Hour, nil, nil},
		{"a ? glob matches one character of the namespace", policy.Request{Namespace: "web-1",
			ServiceAccount: "frontend", DNSNames: []string{"frontend.web-1.example.com"}}, "web", nil,
			24 * time.Hour, nil, []string{"frontend.web-1.example.com"}},
		{"a service account outside the globs falls through to the default", policy.Request{Namespace: "web-1",
			ServiceAccount: "backend", DNSNames: []string{"backend.web-1.svc"}}, policy.DefaultRule, nil,
			24 * time.Hour, nil, []string{"backend.web-1.svc"}},
		{"a DNS name no template gives is refused", policy.Request{Namespace: "web-1", ServiceAccount: "frontend",
			DNSNames: []string{"frontend.web-2.svc"}}, "web", policy.ErrNameNotAllowed, 0, nil, nil},
		{"a name the constraints deny is refused even though a template gives it", policy.Request{
			Namespace: "web-1", ServiceAccount: "frontend", DNSNames: []string{"admin.web-1.example.com"}},
			"web", policy.ErrNameNotAllowed, 0, nil, nil},
		{"DNS names are compared in lower case", policy.Request{Namespace: "web-1", ServiceAccount: "frontend",
			DNSNames: []string{"Frontend.Web-1.SVC"}}, "web", nil, 24 * time.Hour, nil, []string{"frontend.web-1.svc"}},
		{"a SPIFFE ID outside the URI allow list is refused", policy.Request{Namespace: "uri-a",
			ServiceAccount: "x", URI: &url.URL{Scheme: "spiffe", Host: "cluster.local", Path: "/ns/uri-a/sa/x"}},
			"td-only", policy.ErrNameNotAllowed, 0, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Now = now
			d := e.Decide(tt.req)
			if d.Rule != tt.rule {
				t.Errorf("rule %q, want %q; trace %+v", d.Rule, tt.rule, d.Trace)
			}
			if tt.err != nil {
				if d.Allowed || !errors.Is(d.Err, tt.err) {
					t.Fatalf("allowed=%v err=%v, want %v", d.Allowed, d.Err, tt.err)
				}
				return
			}
			if !d.Allowed || d.Err != nil {
				t.Fatalf("refused: %v; trace %+v", d.Err, d.Trace)
			}
			if d.TTL != tt.ttl || !slices.Equal(d.Backends, tt.backends) || !slices.Equal(d.DNSNames, tt.dns) {
				t.Errorf("ttl %s backends %v dns %v, want %s %v %v", d.TTL, d.Backends, d.DNSNames, tt.ttl,
					tt.backends, tt.dns)
			}
		})
	}
}

// TestRouteNeedsNoCSR: the routing entry point answers with a namespace, a service account and a signer.
func TestRouteNeedsNoCSR(t *testing.T) {
	e, err := policy.New(defaults, rules(), backends)
	if err != nil {
		t.Fatal(err)
	}
	d := e.Route("finance", "ledger", "finance", now)
	if !d.Allowed || d.Rule != "finance-signer" || !slices.Equal(d.Backends, []string{"finance-ca", "finance-backup"}) {
		t.Errorf("Route = %+v", d)
	}
	if d := e.Route("payments", "api", "", now); d.Allowed || !errors.Is(d.Err, policy.ErrDenied) {
		t.Errorf("Route of a frozen namespace = %+v, want a deny", d)
	}
	if d := e.Route("payments", "api", "", now.Add(48*time.Hour)); !d.Allowed {
		t.Errorf("Route after the freeze's until = %v, want allowed", d.Err)
	}
}

// TestRateIsTheRules: the deciding rule's per-identity rate comes with the decision, burst at least 1.
func TestRateIsTheRules(t *testing.T) {
	e, err := policy.New(defaults, rules(), backends)
	if err != nil {
		t.Fatal(err)
	}
	d := e.Decide(policy.Request{Namespace: "cards", ServiceAccount: "a",
		NamespaceLabels: map[string]string{"compliance": "pci"}, Now: now})
	if d.Rate == nil || d.Rate.PerSecond != 0.1 || d.Rate.Burst != 2 {
		t.Errorf("rate %+v, want 0.1/s burst 2", d.Rate)
	}
	if d := e.Decide(policy.Request{Namespace: "default", ServiceAccount: "a", Now: now}); d.Rate != nil {
		t.Errorf("the default rule has rate %+v, want none", d.Rate)
	}
}

// TestRuleNames lists every value a decision's Rule can take, default last: the bounded label set.
func TestRuleNames(t *testing.T) {
	e, err := policy.New(defaults, rules(), backends)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"freeze-payments", "lapsed-freeze", "finance-signer", "regulated", "web", "td-only", "default"}
	if got := e.RuleNames(); !slices.Equal(got, want) {
		t.Errorf("RuleNames = %v, want %v", got, want)
	}
}

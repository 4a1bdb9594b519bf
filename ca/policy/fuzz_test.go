package policy_test

import (
	"slices"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/policy"
)

// FuzzDecide: whatever a caller puts in the namespace, service account, signer, key type, names and
// lifetime, Decide neither panics nor allows what it refused a moment before, and every decision names one
// of the configured rules and says why.
func FuzzDecide(f *testing.F) {
	e, err := policy.New(defaults, rules(), backends)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("finance", "ledger", "finance", "ECDSA-P256", "ledger.finance.svc", int64(time.Hour))
	f.Add("payments", "api", "", "", "", int64(0))
	f.Add("web-1", "frontend", "", "RSA-2048", "admin.web-1.example.com", int64(-1))
	f.Add("", "", "\x00", "\xff", "*.", int64(1<<62))
	f.Fuzz(func(t *testing.T, ns, sa, signer, kt, dns string, ttl int64) {
		req := policy.Request{Namespace: ns, ServiceAccount: sa, CertSigner: signer, KeyType: kt,
			DNSNames: []string{dns}, TTL: time.Duration(ttl), Now: now,
			NamespaceLabels: map[string]string{"compliance": "pci"}}
		d := e.Decide(req)
		if !slices.Contains(e.RuleNames(), d.Rule) || len(d.Trace) == 0 {
			t.Fatalf("decision %+v names no rule or has no trace", d)
		}
		if d.Allowed == (d.Err != nil) {
			t.Fatalf("allowed=%v with err %v", d.Allowed, d.Err)
		}
		if again := e.Decide(req); again.Allowed != d.Allowed || again.Rule != d.Rule {
			t.Fatalf("the same request decided twice: %v then %v", d.Allowed, again.Allowed)
		}
		if d.Allowed && ttl > 0 && (d.TTL <= 0 || d.TTL > defaults.MaxTTL) {
			t.Fatalf("allowed lifetime %s outside (0, %s]", d.TTL, defaults.MaxTTL)
		}
	})
}

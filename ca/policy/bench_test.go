package policy_test

import (
	"testing"

	"github.com/meshca/meshca/ca/policy"
)

// BenchmarkDecide: the cost policy adds to one issuance, trace included, when the request falls through
// every rule of the table policy to the default with one DNS name.
func BenchmarkDecide(b *testing.B) {
	e, err := policy.New(defaults, rules(), backends)
	if err != nil {
		b.Fatal(err)
	}
	req := policy.Request{Namespace: "default", ServiceAccount: "sleep", KeyType: "ECDSA-P256",
		DNSNames: []string{"sleep.default.svc"}, Now: now}
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(req); !d.Allowed {
			b.Fatal(d.Err)
		}
	}
}

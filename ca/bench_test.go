package ca_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
)

// BenchmarkIssueFile measures the whole issuance core with the file backend (no gRPC): JWT verification, CSR
// parsing and signature check, policy, signing with an ECDSA P-256 intermediate, chain verification, metrics
// and audit. CSRs are made before the timer.
func BenchmarkIssueFile(b *testing.B) {
	dir, _ := catest.FileCA(b)
	reg := prometheus.NewRegistry()
	i, dev := newIssuerTB(b, reg, ca.NamedBackend{Name: "file", Backend: catest.FileBackend(b, dir, nil)})
	reqs := make([]*ca.Request, 64)
	for n := range reqs {
		reqs[n] = requestTB(b, dev)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			if _, err := i.Issue(context.Background(), reqs[n%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
			n++
		}
	})
}

package ca_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
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

// BenchmarkIssueFileFresh is BenchmarkIssueFile as real renewals are: every request carries its own token and
// a CSR for a fresh ECDSA P-256 key, all made before the timer, so nothing keyed by a token or a CSR can make
// the work look smaller. This is the figure meshca's P1 target (BENCHMARKS.md) is about.
func BenchmarkIssueFileFresh(b *testing.B) {
	dir, _ := catest.FileCA(b)
	i, dev := newIssuerTB(b, prometheus.NewRegistry(),
		ca.NamedBackend{Name: "file", Backend: catest.FileBackend(b, dir, nil)})
	reqs := make([]*ca.Request, b.N)
	for n := range reqs {
		reqs[n] = freshRequest(b, dev, n)
	}
	var next atomic.Int64
	b.ReportAllocs()
	cpu := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := i.Issue(context.Background(), reqs[next.Add(1)-1]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N)/1e3, "cpu-µs/op")
}

// processCPU is the CPU time (user + system) this process has used: on a shared machine, CPU per operation
// is the stable figure where wall time per operation is not.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// freshRequest is request n of a run: its own token and fresh key, for identity sa-n (distinct pods renewing,
// so that meshca's per-caller rate limit does not apply).
func freshRequest(b *testing.B, dev *devtoken.Minter, n int) *ca.Request {
	b.Helper()
	sa := fmt.Sprintf("sa-%d", n)
	tok, err := dev.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: sa})
	if err != nil {
		b.Fatal(err)
	}
	c, _ := catest.WorkloadCSR(b, "spiffe://cluster.local/ns/default/sa/"+sa)
	return &ca.Request{Credentials: authn.Request{Token: tok}, CSR: c}
}

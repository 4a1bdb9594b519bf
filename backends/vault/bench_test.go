package vault_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/vault/vaulttest"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// benchParallelism × GOMAXPROCS goroutines sign at once in every mode (16 on a 2-core machine).
const benchParallelism = 8

// BenchmarkVaultSign compares, at the same concurrency against the same dev Vault and role, signing a fresh
// ECDSA P-256 CSR:
//   - direct: the Vault API client writing <mount>/sign/<role>, nothing else;
//   - backend: vault.Backend.Sign (SPIFFE check, leaf check, chain building and verification);
//   - issuer: ca.Issuer.Issue, meshca's whole request path without gRPC (JWT authentication, CSR parsing and
//     policy, the backend, the core's own chain verification, metrics and audit).
//
// serial runs one request at a time (latency); parallel runs benchParallelism×GOMAXPROCS at once
// (throughput). Each reports certs/s and latency percentiles; backend and issuer also report their time per
// certificate as a multiple of direct's in the same run (x_direct), so run all three together:
//
//	go test -run '^$' -bench BenchmarkVaultSign -benchtime 3s ./backends/vault/
func BenchmarkVaultSign(b *testing.B) {
	s := devVault(b)
	p := s.PKI(b, vaulttest.PKIOptions{})
	cfg := config(b, s, p)
	cfg.Logger = catest.DiscardLogger()
	be := newBackend(b, cfg)
	direct := s.Client(b)
	direct.SetToken(string(cfg.Auth.Token))
	issuer, dev := newIssuer(b, be)

	// Pre-built inputs, cycled: key generation is the agent's cost, not the CA's.
	const n = 256
	type input struct {
		req     *backends.SignRequest
		csrPEM  []byte
		token   string
		payload map[string]any
	}
	inputs := make([]input, n)
	for i := range inputs {
		ns, sa := "bench", fmt.Sprintf("sa-%d", i)
		id := fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", ns, sa)
		req := request(b, "ecdsa", id, time.Hour)
		tok, err := dev.Mint(devtoken.Claims{Namespace: ns, ServiceAccount: sa, TTL: 24 * time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		inputs[i] = input{req: req, csrPEM: pemBlock("CERTIFICATE REQUEST", req.CSR.Raw), token: tok,
			payload: map[string]any{"csr": string(pemBlock("CERTIFICATE REQUEST", req.CSR.Raw)),
				"uri_sans": []string{id}, "ttl": "3600s", "format": "pem", "exclude_cn_from_sans": true}}
	}
	signPath := p.Mount + "/sign/" + p.Role
	modes := []struct {
		name string
		sign func(ctx context.Context, in *input) error
	}{
		{"direct", func(ctx context.Context, in *input) error {
			_, err := direct.Logical().WriteWithContext(ctx, signPath, in.payload)
			return err
		}},
		{"backend", func(ctx context.Context, in *input) error {
			_, err := be.Sign(ctx, in.req)
			return err
		}},
		{"issuer", func(ctx context.Context, in *input) error {
			_, err := issuer.Issue(ctx, &ca.Request{Credentials: authn.Request{Token: in.token}, CSR: in.csrPEM,
				TTL: time.Hour})
			return err
		}},
	}
	for _, conc := range []string{"serial", "parallel"} {
		nsPerOp := map[string]float64{}
		for _, m := range modes {
			b.Run(conc+"/"+m.name, func(b *testing.B) {
				var next atomic.Int64
				var mu sync.Mutex
				var lat []time.Duration
				body := func(more func() bool) {
					var mine []time.Duration
					for more() {
						in := &inputs[next.Add(1)%n]
						t0 := time.Now()
						if err := m.sign(b.Context(), in); err != nil {
							b.Errorf("%s: %v", m.name, err)
							return
						}
						mine = append(mine, time.Since(t0))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}
				b.ResetTimer()
				start := time.Now()
				if conc == "serial" {
					i := 0
					body(func() bool { i++; return i <= b.N })
				} else {
					b.SetParallelism(benchParallelism)
					b.RunParallel(func(pb *testing.PB) { body(pb.Next) })
				}
				elapsed := time.Since(start)
				b.StopTimer()
				if len(lat) == 0 {
					return
				}
				slices.Sort(lat)
				pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "certs/s")
				b.ReportMetric(pct(0.50), "p50-ms")
				b.ReportMetric(pct(0.99), "p99-ms")
				per := float64(elapsed.Nanoseconds()) / float64(len(lat))
				nsPerOp[m.name] = per
				if d, ok := nsPerOp["direct"]; ok && m.name != "direct" {
					b.ReportMetric(per/d, "x_direct")
				}
			})
		}
	}
}

package loadtest

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// stormAgainst starts meshca allowing maxInFlight requests at once, with the process and Go collectors on its
// /metrics, and returns a storm of n identities against it.
func stormAgainst(t *testing.T, maxInFlight, n int) Config {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	m := catest.StartMeshca(t, catest.MeshcaOptions{Registry: reg, Limits: ca.Limits{MaxInFlight: maxInFlight}})
	return Config{Addr: m.GRPCAddr, Roots: m.Roots, Tokens: m.Tokens, Namespaces: 1, ServiceAccounts: n,
		Concurrency: 12, Timeout: 10 * time.Second, Scenario: ScenarioStorm,
		ServerMetrics: "http://" + m.HTTPAddr + "/metrics"}
}

func TestStormServesEveryIdentityRetryingResourceExhausted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts meshca")
	}
	tests := []struct {
		name        string
		retries     int
		wantOK      bool // every identity served
		wantRetries bool
	}{
		{"a storm beyond meshca's in-flight limit is served in full when the client retries", MaxRetries, true, true},
		{"without retries the requests beyond the limit fail with ResourceExhausted", 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := stormAgainst(t, 1, 40)
			c.Retries = tt.retries
			wantSource := "metrics"
			if tt.retries > 0 { // the kernel's accounting of this process, which serves meshca in-process
				c.ServerPID, wantSource = os.Getpid(), "proc"
			}
			res, err := Run(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			assertConsistent(t, res)
			if res.Scheduled != 40 || res.Sent != 40 || res.Invalid != 0 {
				t.Fatalf("scheduled %d sent %d invalid %d", res.Scheduled, res.Sent, res.Invalid)
			}
			if got := res.OK == 40 && res.ErrorCount() == 0; got != tt.wantOK {
				t.Errorf("ok %d errors %v retries %d", res.OK, res.Errors, res.Retries)
			}
			if !tt.wantOK && res.Errors["ResourceExhausted"] == 0 {
				t.Errorf("errors %v, want ResourceExhausted", res.Errors)
			}
			if (res.Retries > 0) != tt.wantRetries {
				t.Errorf("retries %d", res.Retries)
			}
			s := res.Server
			if s == nil || s.CPUSeconds < 0 || s.PeakRSS < 1<<20 || s.PeakGoroutines < 2 || s.Samples < 2 ||
				s.Source != wantSource {
				t.Errorf("server stats %+v", s)
			}
		})
	}
}

// connCounter is a fake client counting the connections a storm opens and the tokens it sends.
type connCounter struct {
	slowClient
	mu     sync.Mutex
	opened int
	tokens []string
}

func (c *connCounter) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest,
	opts ...grpc.CallOption) (*pb.IstioCertificateResponse, error) {
	md, _ := metadata.FromOutgoingContext(ctx)
	c.mu.Lock()
	c.tokens = append(c.tokens, md.Get("authorization")...)
	c.mu.Unlock()
	return c.slowClient.CreateCertificate(ctx, req, opts...)
}

func TestStormOpensOneConnectionPerIdentity(t *testing.T) {
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	fake := &connCounter{}
	c := Config{Addr: "127.0.0.1:1", Tokens: dev, Namespaces: 3, ServiceAccounts: 5, Concurrency: 4,
		Scenario: ScenarioStorm}
	c.Roots = withFiles(c).Roots
	cfg := c.withDefaults()
	r := &runner{cfg: cfg, outcomes: make([]outcome, 15)}
	r.connect = func() (pb.IstioCertificateServiceClient, func(), error) {
		fake.mu.Lock()
		fake.opened++
		fake.mu.Unlock()
		return fake, func() {}, nil
	}
	if err := r.mintTokens(); err != nil {
		t.Fatal(err)
	}
	if err := r.prepareAll(context.Background(), 15); err != nil {
		t.Fatal(err)
	}
	sent, _, interrupted := r.storm(context.Background(), 15)
	if len(sent) != 15 || interrupted || fake.opened != 15 || fake.maxSeen.Load() > 4 {
		t.Errorf("sent %d, interrupted %v, %d connections, %d at once", len(sent), interrupted, fake.opened,
			fake.maxSeen.Load())
	}
	slices.Sort(fake.tokens)
	if len(slices.Compact(fake.tokens)) != 15 {
		t.Errorf("%d distinct tokens for 15 identities", len(fake.tokens))
	}
}

func TestFreshTokensGiveEveryRequestItsOwnToken(t *testing.T) {
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	for _, fresh := range []bool{false, true} {
		fake := &connCounter{}
		c := Config{Addr: "127.0.0.1:1", Tokens: dev, Namespaces: 1, ServiceAccounts: 2, Rate: 40,
			Duration: 500 * time.Millisecond, FreshTokens: fresh}
		c.Roots = withFiles(c).Roots
		if _, err := run(context.Background(), c, fake); err != nil {
			t.Fatal(err)
		}
		slices.Sort(fake.tokens)
		n := len(fake.tokens)
		distinct := len(slices.Compact(fake.tokens))
		if want := map[bool]int{false: 2, true: n}[fresh]; n != 20 || distinct != want {
			t.Errorf("fresh %v: %d requests, %d distinct tokens, want %d", fresh, n, distinct, want)
		}
	}
}

func TestCSRPoolReusesCSRsEachForItsOwnIdentity(t *testing.T) {
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Addr: "127.0.0.1:1", Tokens: dev, Namespaces: 1, ServiceAccounts: 3, Rate: 40,
		Duration: 500 * time.Millisecond, CSRPool: 4}
	c.Roots = withFiles(c).Roots
	r := &runner{cfg: c.withDefaults()}
	if err := r.mintTokens(); err != nil {
		t.Fatal(err)
	}
	if err := r.prepareAll(context.Background(), 20); err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for i, p := range r.prepared {
		distinct[string(p.csr)] = true
		req, err := parseCSR(p.csr)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := req.URIs[0].String(), r.owner(i).id.String(); got != want {
			t.Errorf("request %d: CSR for %s, want its owner %s", i, got, want)
		}
	}
	if len(r.prepared) != 20 || len(distinct) != 6 {
		t.Errorf("%d requests over %d distinct CSRs, want 20 over 6 (4 rounded up to 2 × 3 identities)",
			len(r.prepared), len(distinct))
	}
}

func parseCSR(p []byte) (*x509.CertificateRequest, error) {
	b, _ := pem.Decode(p)
	return x509.ParseCertificateRequest(b.Bytes)
}

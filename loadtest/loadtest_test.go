package loadtest

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/internal/devtoken"
	"github.com/meshca/meshca/internal/terminal"
)

// config returns a run against m at rate for d with small defaults. Concurrency is above every test's
// request count, so a slow, shared machine drops nothing (drops are tested with their own small bound).
func config(m *catest.Meshca, rate float64, d time.Duration) Config {
	return Config{Addr: m.GRPCAddr, Roots: m.Roots, Tokens: m.Tokens, Namespaces: 3, ServiceAccounts: 4,
		Rate: rate, Duration: d, Concurrency: 256, Timeout: 5 * time.Second}
}

// assertConsistent checks the invariants every result holds.
func assertConsistent(t *testing.T, res *Result) {
	t.Helper()
	if res.Scheduled != res.Sent+res.Dropped {
		t.Errorf("scheduled %d != sent %d + dropped %d", res.Scheduled, res.Sent, res.Dropped)
	}
	if res.Sent != res.OK+res.Invalid+res.ErrorCount() {
		t.Errorf("sent %d != ok %d + invalid %d + errors %d", res.Sent, res.OK, res.Invalid, res.ErrorCount())
	}
	l := res.Latency
	if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("percentiles out of order: %+v", l)
	}
}

func TestRunAgainstMeshca(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{})
	tests := []struct {
		name string
		cfg  Config
		want int // requests scheduled
	}{
		{"ECDSA keys prepared before the timer, 2s at 40/s", config(m, 40, 2*time.Second), 80},
		{"RSA-2048 keys generated as requests are sent, over two connections", func() Config {
			c := config(m, 4, time.Second)
			c.Key, c.GenerateKeysInline, c.Connections = KeyRSA2048, true, 2
			return c
		}(), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, err := Run(context.Background(), tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			assertConsistent(t, res)
			if res.Scheduled != tt.want || res.Dropped != 0 || res.OK != tt.want || res.Invalid != 0 ||
				len(res.Errors) != 0 {
				t.Errorf("scheduled %d dropped %d ok %d invalid %d errors %v (%v), want %d all ok",
					res.Scheduled, res.Dropped, res.OK, res.Invalid, res.Errors, res.Samples, tt.want)
			}
			if res.Latency.P50 <= 0 || res.Throughput <= 0 || res.Identities != 12 || res.Failed() {
				t.Errorf("latency %+v throughput %v identities %d failed %v", res.Latency, res.Throughput,
					res.Identities, res.Failed())
			}
			if d := res.Elapsed; d < tt.cfg.Duration || time.Since(start) > tt.cfg.Duration+10*time.Second {
				t.Errorf("elapsed %v, took %v: want about %v", d, time.Since(start), tt.cfg.Duration)
			}
		})
	}
}

func TestForeignIdentitiesAreRefused(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{})
	tests := []struct {
		name            string
		fraction        float64
		identities      int
		denied, ok, all int
	}{
		{"every CSR asking for another workload's identity is PermissionDenied", 1, 12, 10, 0, 10},
		{"a quarter of the requests asking for a foreign identity are refused, the rest issued", 0.25, 12, 5, 15, 20},
		{"with one identity a made-up foreign identity is refused", 1, 1, 10, 0, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config(m, 20, time.Duration(tt.all)*50*time.Millisecond)
			c.ForeignFraction = tt.fraction
			if tt.identities == 1 {
				c.Namespaces, c.ServiceAccounts = 1, 1
			}
			res, err := Run(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			assertConsistent(t, res)
			denied := res.Errors[codes.PermissionDenied.String()]
			if denied != tt.denied || res.OK != tt.ok || res.Sent != tt.all || !res.Failed() {
				t.Errorf(
					"errors %v ok %d sent %d (%v); want %d PermissionDenied, %d ok of %d",
					res.Errors,
					res.OK,
					res.Sent,
					res.Samples,
					tt.denied,
					tt.ok,
					tt.all,
				)
			}
		})
	}
}

// slowClient answers after a delay with an empty chain, counting requests in flight.
type slowClient struct {
	delay             time.Duration
	inFlight, maxSeen atomic.Int64
	// first, if set, runs on the first request.
	first     func()
	firstOnce sync.Once
}

func (s *slowClient) CreateCertificate(ctx context.Context, _ *pb.IstioCertificateRequest,
	_ ...grpc.CallOption) (*pb.IstioCertificateResponse, error) {
	if s.first != nil {
		s.firstOnce.Do(s.first)
	}
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		old := s.maxSeen.Load()
		if n <= old || s.maxSeen.CompareAndSwap(old, n) {
			break
		}
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	if !strings.HasPrefix(strings.Join(md.Get("authorization"), ""), "Bearer ey") || len(md.Get("clusterid")) != 1 {
		return nil, context.Canceled
	}
	time.Sleep(s.delay)
	return &pb.IstioCertificateResponse{}, nil
}

func TestOpenLoopDropsRequestsBeyondTheInFlightLimit(t *testing.T) {
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	fake := &slowClient{delay: 100 * time.Millisecond}
	c := Config{Addr: "127.0.0.1:1", Roots: x509.NewCertPool(), Tokens: dev, Namespaces: 1, ServiceAccounts: 2,
		Rate: 100, Duration: 500 * time.Millisecond, Concurrency: 2}
	res, err := run(context.Background(), c, fake)
	if err != nil {
		t.Fatal(err)
	}
	assertConsistent(t, res)
	// The schedule does not slow down for responses: all 50 are due, at most 2 in flight at a time.
	if res.Scheduled != 50 || res.Sent > 14 || res.Dropped < 36 || fake.maxSeen.Load() > 2 {
		t.Errorf("scheduled %d sent %d dropped %d max in flight %d", res.Scheduled, res.Sent, res.Dropped,
			fake.maxSeen.Load())
	}
	if res.Invalid != res.Sent || !strings.Contains(res.Samples["invalid_response"], "0 certificates") {
		t.Errorf("invalid %d of %d: %q", res.Invalid, res.Sent, res.Samples["invalid_response"])
	}
}

func TestRunStopsWhenTheContextEnds(t *testing.T) {
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := Config{Addr: "127.0.0.1:1", Roots: x509.NewCertPool(), Tokens: dev, Rate: 50, Duration: 20 * time.Second}
	// The run is cancelled 300ms after it starts sending (preparing may take longer on a busy machine).
	res, err := run(ctx, c, &slowClient{first: func() { time.AfterFunc(300*time.Millisecond, cancel) }})
	if err != nil {
		t.Fatal(err)
	}
	assertConsistent(t, res)
	if !res.Interrupted || res.Elapsed > 5*time.Second || res.Scheduled > 50 {
		t.Errorf("interrupted %v elapsed %v scheduled %d", res.Interrupted, res.Elapsed, res.Scheduled)
	}
}

func TestRunRefusesAServerItCannotVerify(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{})
	other := catest.StartMeshca(t, catest.MeshcaOptions{}) // a different root
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"serving certificate from an untrusted root", func(c *Config) { c.Roots = other.Roots }},
		{"server name not in the serving certificate", func(c *Config) { c.ServerName = "meshca.example.com" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config(m, 10, time.Second)
			tt.edit(&c)
			res, err := Run(context.Background(), c)
			if !errors.Is(err, ErrConnect) || status.Code(err) != codes.Unavailable || res != nil {
				t.Fatalf("Run = %+v, %v (code %s); want ErrConnect, Unavailable, no result", res, err, status.Code(err))
			}
		})
	}
}

func TestCheck(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{})
	id := spiffeID(catest.TrustDomain, "ns1", "sa1")
	p, err := newCSR(KeyECDSAP256, id)
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+m.Token(t, "ns1", "sa1"))
	resp, err := pb.NewIstioCertificateServiceClient(m.Dial(t)).CreateCertificate(ctx,
		&pb.IstioCertificateRequest{Csr: string(p.csr), ValidityDuration: 3600})
	if err != nil {
		t.Fatal(err)
	}
	chain := resp.GetCertChain()
	other, err := newCSR(KeyECDSAP256, id)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(chain[0]))
	leaf, _ := x509.ParseCertificate(block.Bytes)
	tests := []struct {
		name  string
		chain []string
		id    string
		pub   any
		ok    bool
	}{
		{"the issued chain for the requested identity and key is valid", chain, id.String(), p.pub, true},
		{"a leaf alone is too short for istio-agent", chain[:1], id.String(), p.pub, false},
		{
			"a leaf for another identity is invalid",
			chain,
			spiffeID(catest.TrustDomain, "ns1", "sa2").String(),
			p.pub,
			false,
		},
		{"a leaf for another key is invalid", chain, id.String(), other.pub, false},
		{"a chain without its intermediate does not verify", []string{chain[0], chain[len(chain)-1]}, id.String(),
			p.pub, false},
		{"a chain not ending in its root is invalid", chain[:len(chain)-1], id.String(), p.pub, false},
		{"garbage is invalid", []string{"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", chain[1]},
			id.String(), p.pub, false},
	}
	if leaf == nil || len(chain) < 3 {
		t.Fatalf("want leaf, intermediate, root; got %d elements", len(chain))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := check(tt.chain, tt.id, tt.pub, m.Roots, nil)
			if (err == nil) != tt.ok {
				t.Errorf("check = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	good := Config{Addr: "127.0.0.1:15012", Roots: x509.NewCertPool(), Tokens: dev, Rate: 10, Duration: time.Second}
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"defaults fill the rest", func(*Config) {}, true},
		{"an address without a port is refused", func(c *Config) { c.Addr = "127.0.0.1" }, false},
		{"missing roots are refused", func(c *Config) { c.Roots = nil }, false},
		{"a missing token issuer is refused", func(c *Config) { c.Tokens = nil }, false},
		{"a zero rate is refused", func(c *Config) { c.Rate = 0 }, false},
		{"an unbounded duration is refused", func(c *Config) { c.Duration = 2 * time.Hour }, false},
		{"an unknown key type is refused", func(c *Config) { c.Key = "dsa" }, false},
		{"a foreign fraction above 1 is refused", func(c *Config) { c.ForeignFraction = 1.5 }, false},
		{"negative concurrency is refused", func(c *Config) { c.Concurrency = -1 }, false},
		{"pods per identity within the bound are fine", func(c *Config) { c.PodsPerIdentity = 1000 }, true},
		{"more pods than MaxPods are refused", func(c *Config) {
			c.Namespaces, c.ServiceAccounts, c.PodsPerIdentity = 100, 100, MaxPods/10000+1
		}, false},
		{"negative pods per identity are refused", func(c *Config) { c.PodsPerIdentity = -1 }, false},
		{
			"too many requests to prepare are refused",
			func(c *Config) { c.Rate, c.Duration = MaxRate, time.Hour },
			false,
		},
		{"too many requests to prepare are fine inline", func(c *Config) {
			c.Rate, c.Duration, c.GenerateKeysInline = MaxRate, time.Hour, true
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestCommand(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{})
	dir := t.TempDir()
	if err := m.Tokens.WriteKey(filepath.Join(dir, devtoken.KeyFile)); err != nil {
		t.Fatal(err)
	}
	roots, err := m.Issuer.Roots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var rootPEM []byte
	for _, r := range roots {
		rootPEM = append(rootPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})...)
	}
	rootFile := filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(rootFile, rootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--addr", m.GRPCAddr, "--root", rootFile, "--dev-dir", dir, "--rate", "10", "--duration", "500ms",
		"--namespaces", "2", "--service-accounts", "2"}
	tests := []struct {
		name      string
		args      []string
		code      int
		stdoutHas string
	}{
		{"a clean run prints JSON and exits 0 with --fail-on-error", []string{"--json", "--fail-on-error"}, ExitOK,
			`"ok": 5`},
		{"a table is the default output", nil, ExitOK, "latency"},
		{"foreign identities fail the run with --fail-on-error", []string{"--foreign-fraction", "1", "--fail-on-error"},
			ExitFailed, "PermissionDenied"},
		{"foreign identities are only reported without --fail-on-error", []string{"--foreign-fraction", "1"}, ExitOK,
			"PermissionDenied"},
		{"a bad flag value is a usage error", []string{"--key", "dsa"}, ExitUsage, ""},
		{"a missing dev directory is an error", []string{"--dev-dir", filepath.Join(dir, "nope")}, ExitError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Command(context.Background(), append(append([]string{}, base...), tt.args...), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String(), tt.stdoutHas) {
				t.Errorf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			if tt.args != nil && tt.args[0] == "--json" {
				var v map[string]any
				if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
					t.Errorf("JSON output: %v", err)
				}
			}
		})
	}
}

func TestResultReportsWhatReallyHappened(t *testing.T) {
	cfg := Config{Duration: 10 * time.Second, Rate: 10}
	t.Run("an interrupted run's send rate is over the time it ran", func(t *testing.T) {
		outcomes := make([]outcome, 20)
		sent := make([]int, 20)
		for i := range sent {
			sent[i] = i
		}
		res := summarize(cfg, outcomes, sent, 0, 2*time.Second)
		if res.SentRate != 10 || res.Throughput != 10 {
			t.Errorf("sent %.1f req/s, ok %.1f certs/s; want 10 and 10 over the 2s the run lasted",
				res.SentRate, res.Throughput)
		}
	})
	t.Run("a run where every request failed shows no latency figures", func(t *testing.T) {
		outcomes := []outcome{{code: codes.Unavailable, msg: "down"}, {code: codes.Unavailable, msg: "down"}}
		res := summarize(cfg, outcomes, []int{0, 1}, 0, 10*time.Second)
		var b strings.Builder
		if err := res.WriteTable(&b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "no successful requests") || strings.Contains(b.String(), "p50 0.00ms") {
			t.Errorf("table:\n%s", b.String())
		}
	})
}

func TestProgress(t *testing.T) {
	t.Run("the live counters and the p99 bucket follow the outcomes", func(t *testing.T) {
		var l live
		for range 99 {
			l.start()
			l.done(outcome{latency: time.Millisecond})
		}
		l.start()
		l.done(outcome{latency: time.Second})
		l.start()
		l.done(outcome{code: codes.Unavailable})
		l.start() // still in flight
		line := l.line(2 * time.Second)
		for _, want := range []string{"sent 102 (51.0/s)", "in flight 1", "ok 100", "errors 1"} {
			if !strings.Contains(line, want) {
				t.Errorf("line %q lacks %q", line, want)
			}
		}
		if p, _ := l.p99(); p < time.Millisecond || p > 1300*time.Microsecond {
			t.Errorf("p99 bucket bound %v, want just above 1ms (99 of 100 answers took 1ms)", p)
		}
	})
	t.Run("a run with a progress writer reports at least once and ends the line", func(t *testing.T) {
		dev, err := devtoken.Generate("")
		if err != nil {
			t.Fatal(err)
		}
		var out catest.SyncBuffer
		c := Config{Addr: "127.0.0.1:1", Roots: x509.NewCertPool(), Tokens: dev, Namespaces: 1, ServiceAccounts: 1,
			Rate: 20, Duration: 1500 * time.Millisecond, Progress: &out}
		if _, err := run(context.Background(), c, &slowClient{}); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		if !strings.HasPrefix(s, "\r") || !strings.HasSuffix(s, "\n") || !strings.Contains(s, "sent 30") {
			t.Errorf("progress output %q", s)
		}
	})
	t.Run("pipes get no progress", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		if terminal.Is(w) || terminal.Is(&strings.Builder{}) {
			t.Error("a pipe or buffer was taken for a terminal")
		}
	})
}

// The load tester names key types as meshca's key_type label does: the CSR of each key type parses in meshca
// to the same name, and the older --key spellings still select it.
func TestKeyTypesMatchMeshcaLabels(t *testing.T) {
	id := spiffeID(catest.TrustDomain, "ns1", "sa1")
	for _, tc := range []struct {
		flag string
		want KeyType
	}{{"ecdsa-p256", KeyECDSAP256}, {"ECDSA-P256", KeyECDSAP256}, {"rsa2048", KeyRSA2048}, {"RSA-2048", KeyRSA2048}} {
		t.Run("--key "+tc.flag, func(t *testing.T) {
			k := ParseKeyType(tc.flag)
			if k != tc.want {
				t.Fatalf("ParseKeyType(%q) = %q, want %q", tc.flag, k, tc.want)
			}
			p, err := newCSR(k, id)
			if err != nil {
				t.Fatal(err)
			}
			req, err := csr.Parse(p.csr)
			if err != nil {
				t.Fatal(err)
			}
			if req.KeyType != string(k) {
				t.Fatalf("meshca labels the CSR's key %q, the load tester calls it %q", req.KeyType, k)
			}
		})
	}
}

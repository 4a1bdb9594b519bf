package meshcatest

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/compliance"
	"github.com/meshca/meshca/internal/devtoken"
)

// TrustDomain is the trust domain of a CA started by Start.
const TrustDomain = catest.TrustDomain

// Options tunes a CA started by Start. The zero value is meshca's default policy.
type Options struct {
	// MinTTL, MaxTTL and DefaultTTL override the issuance policy's lifetimes (e.g. a 5s minimum so that
	// agents rotate within a test).
	MinTTL, MaxTTL, DefaultTTL time.Duration
	// ExtraRoots join the trust bundle sent to workloads (e.g. the next root of a rotation).
	ExtraRoots []*x509.Certificate
	// Backends name more file CAs, each a backend after the mesh's own ("file"), for policy rules to route to.
	Backends []string
	// Rules are the per-namespace policy rules (docs/policy.md).
	Rules policy.Config
	// TLSPolicy is the COMPLIANCE_POLICY of the gRPC port; its handshakes are counted in
	// meshca_tls_handshakes_total either way.
	TLSPolicy compliance.Policy
}

// CA is a running meshca.
type CA struct {
	// GRPCAddr ("127.0.0.1:port") serves istio.v1.auth.IstioCertificateService over TLS; HTTPAddr serves
	// /metrics, /healthz, /readyz and /roots.pem.
	GRPCAddr, HTTPAddr string
	// Root is the mesh root that verifies both the serving certificate and issued certificates.
	Root    *x509.Certificate
	RootPEM []byte
	// Tokens mints service-account tokens this CA trusts.
	Tokens *devtoken.Minter
	// BackendRoots are the roots of the CAs of Options.Backends, by name.
	BackendRoots map[string]*x509.Certificate
	// Registry holds every metric the CA registered.
	Registry *prometheus.Registry

	audit *recorder
}

// Start generates a dev CA in a temporary cacerts directory and serves it with catest.StartMeshca (the file
// backend, dev token issuer and client-certificate renewal) on free loopback ports until the test ends. Logs
// are kept in memory, audit records for Audit and everything printed only if the test fails.
func Start(tb testing.TB, opts Options) *CA {
	tb.Helper()
	logs := &catest.SyncBuffer{}
	tb.Cleanup(func() { // registered first, so it runs after meshca has stopped
		if tb.Failed() {
			tb.Logf("meshca log:\n%s", logs.String())
		}
	})
	audit := newRecorder()
	log := slog.New(
		slog.NewMultiHandler(audit, slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	)
	reg := prometheus.NewRegistry()
	handshakes, err := compliance.NewHandshakes(reg, log)
	if err != nil {
		tb.Fatal(err)
	}
	dir, g := catest.FileCA(tb)
	backends := []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(tb, dir, reg)}}
	roots := map[string]*x509.Certificate{}
	for _, name := range opts.Backends {
		d, bg := catest.FileCA(tb)
		backends = append(backends, ca.NamedBackend{Name: name, Backend: catest.FileBackend(tb, d, nil)})
		roots[name] = bg.Root
	}
	m := catest.StartMeshca(tb, catest.MeshcaOptions{
		Backends: backends,
		Rules:    opts.Rules,
		Policy: &ca.Policy{TrustDomain: catest.TrustDomain, MinTTL: opts.MinTTL, MaxTTL: opts.MaxTTL,
			DefaultTTL: opts.DefaultTTL},
		Registry:   reg,
		Logger:     log,
		ExtraRoots: opts.ExtraRoots,
		Server:     server.Config{TLSPolicy: opts.TLSPolicy, Handshakes: handshakes},
	})
	c := &CA{GRPCAddr: m.GRPCAddr, HTTPAddr: m.HTTPAddr, Root: g.Root, RootPEM: g.RootPEM, Tokens: m.Tokens,
		Registry: reg, audit: audit, BackendRoots: roots}
	c.waitReady(tb)
	return c
}

// waitReady polls /readyz until meshca answers 200 (it first issues its own serving certificate).
func (c *CA) waitReady(tb testing.TB) {
	tb.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("http://" + c.HTTPAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("HTTP %s", resp.Status)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("meshcatest: meshca not ready after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Token mints a token for the service account ns/sa with the default audience (istio-ca) and a 1h lifetime.
func (c *CA) Token(tb testing.TB, ns, sa string) string {
	tb.Helper()
	tok, err := c.Tokens.Mint(devtoken.Claims{Namespace: ns, ServiceAccount: sa})
	if err != nil {
		tb.Fatalf("meshcatest: minting a token: %v", err)
	}
	return tok
}

// WriteRoot writes the root certificate (PEM) to path, creating its directory.
func (c *CA) WriteRoot(tb testing.TB, path string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, c.RootPEM, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// Counter returns the value of the counter name whose labels include labels (0 when no such series exists).
// Series matching labels are summed, so a nil map gives the counter's total.
func (c *CA) Counter(tb testing.TB, name string, labels map[string]string) float64 {
	tb.Helper()
	mfs, err := c.Registry.Gather()
	if err != nil {
		tb.Fatalf("meshcatest: gathering metrics: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) && m.GetCounter() != nil {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func matches(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, lp := range m.GetLabel() {
		got[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// AuditRecord is one audit log line: its message ("certificate issued", "certificate request not served") and
// its attributes as strings (outcome, reason, caller, identity, key_type, serial, error, ...).
type AuditRecord struct {
	Message string
	Attrs   map[string]string
}

// Audit returns the audit records of workload requests written so far: the log records that carry an
// outcome, without those of meshca's own serving certificate (authn "self").
func (c *CA) Audit() []AuditRecord {
	var out []AuditRecord
	for _, r := range c.audit.records() {
		if _, ok := r.Attrs["outcome"]; ok && r.Attrs["authn"] != "self" {
			out = append(out, r)
		}
	}
	return out
}

// recorder is a slog.Handler that keeps every record in memory. Groups are flattened.
type recorder struct {
	store *recordStore
	attrs []slog.Attr
}

type recordStore struct {
	mu   sync.Mutex
	recs []AuditRecord
}

func newRecorder() *recorder { return &recorder{store: &recordStore{}} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	a := AuditRecord{Message: rec.Message, Attrs: map[string]string{}}
	add := func(at slog.Attr) bool {
		a.Attrs[at.Key] = at.Value.Resolve().String()
		return true
	}
	for _, at := range r.attrs {
		add(at)
	}
	rec.Attrs(add)
	r.store.mu.Lock()
	r.store.recs = append(r.store.recs, a)
	r.store.mu.Unlock()
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{store: r.store, attrs: append(append([]slog.Attr(nil), r.attrs...), as...)}
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

func (r *recorder) records() []AuditRecord {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	return append([]AuditRecord(nil), r.store.recs...)
}

package stepca_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/backends/stepca"
	"github.com/meshca/meshca/backends/stepca/stepcatest"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
)

// mesh is meshca's issuance core in front of a step-ca and, optionally, a file backend: the whole request
// path (service-account JWT, CSR parsing, policy, backends in order, chain verification) without gRPC.
type mesh struct {
	issuer *ca.Issuer
	reg    *prometheus.Registry
	dev    *devtoken.Minter
}

// newMesh builds an Issuer with step-ca (JWK provisioner) as the primary backend and, when withFile is
// set, a file backend holding a CA of its own as the secondary. With replay, step-ca is reached through a
// stepca.Replayer that sends the first token again with every request.
func newMesh(tb testing.TB, srv *stepcatest.Server, withFile, replay bool) *mesh {
	tb.Helper()
	dev, err := devtoken.Generate("")
	if err != nil {
		tb.Fatal(err)
	}
	jwtAuthn, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	var sb backends.Backend = newBackend(tb, jwkConfig(srv))
	if replay {
		sb = &stepca.Replayer{Backend: sb.(*stepca.Backend)}
	}
	named := []ca.NamedBackend{{Name: "stepca", Backend: sb}}
	if withFile {
		dir := tb.TempDir()
		if _, err := file.Init(dir, file.GenerateOptions{Organization: "cluster.local"}); err != nil {
			tb.Fatal(err)
		}
		fb, err := file.New(context.Background(), file.Config{Dir: dir, Logger: quietLogger()})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { fb.Close() })
		named = append(named, ca.NamedBackend{Name: "file", Backend: fb})
	}
	reg := prometheus.NewRegistry()
	iss, err := ca.New(ca.Config{
		Backends:      named,
		Authenticator: jwtAuthn,
		Policy:        ca.Policy{TrustDomain: srv.TrustDomain},
		Limits:        ca.Limits{PerCallerRate: -1}, // 8 callers as fast as they can: not a test of limits
		SignTimeout:   5 * time.Second,
		Logger:        quietLogger(),
		Audit:         slog.New(slog.DiscardHandler),
		Registerer:    reg,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &mesh{issuer: iss, reg: reg, dev: dev}
}

// agent is one simulated istio-agent: a service-account token and a CSR for its identity.
type agent struct {
	token string
	csr   []byte
}

func (m *mesh) agent(tb testing.TB, n int) agent {
	tb.Helper()
	ns, sa := fmt.Sprintf("ns-%d", n), fmt.Sprintf("sa-%d", n)
	tok, err := m.dev.Mint(devtoken.Claims{Namespace: ns, ServiceAccount: sa})
	if err != nil {
		tb.Fatal(err)
	}
	req := signRequest(tb, ecKey(tb), "spiffe://cluster.local/ns/"+ns+"/sa/"+sa, time.Hour)
	return agent{token: tok, csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})}
}

func (m *mesh) issue(a agent) (*ca.Result, error) {
	return m.issuer.Issue(context.Background(), &ca.Request{
		Credentials: authn.Request{Token: a.token}, CSR: a.csr, TTL: time.Hour, Peer: "127.0.0.1:1",
	})
}

// issuedBy reads meshca_certificates_issued_total for one backend.
func (m *mesh) issuedBy(tb testing.TB, backend string) float64 {
	tb.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "meshca_certificates_issued_total" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			if labelValue(mm, "backend") == backend {
				sum += mm.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestFailoverToFileBackendUnderLoad: with step-ca primary and a file backend secondary, stopping step-ca
// under concurrent load fails no request; restarting it brings traffic back to it; metrics name the backend
// that signed; every certificate verifies against the issuer's trust bundle (both backends' roots).
func TestFailoverToFileBackendUnderLoad(t *testing.T) {
	srv := stepcatest.Start(t, stepcatest.Options{})
	m := newMesh(t, srv, true, false)
	const workers = 8
	agents := make([]agent, workers)
	for i := range agents {
		agents[i] = m.agent(t, i)
	}
	bundle, err := m.issuer.Roots(context.Background())
	if err != nil || len(bundle) != 2 {
		t.Fatalf("trust bundle = %d roots, %v; want step-ca's and the file backend's", len(bundle), err)
	}
	pool := x509.NewCertPool()
	for _, r := range bundle {
		pool.AddCert(r)
	}

	type outcome struct {
		backend       string
		started, done time.Time
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		failed   atomic.Int64
		firstErr atomic.Value
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				started := time.Now()
				res, err := m.issue(agents[w])
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				inter := x509.NewCertPool()
				for _, c := range res.Chain[1:] {
					inter.AddCert(c)
				}
				if _, err := res.Chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Errorf(
						"certificate from %s does not verify against the trust bundle: %w", res.Backend, err))
				}
				mu.Lock()
				outcomes = append(outcomes, outcome{res.Backend, started, time.Now()})
				mu.Unlock()
			}
		})
	}
	// count counts the certificates from backend whose request finished in [from, to).
	count := func(backend string, from, to time.Time) (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range outcomes {
			if o.backend == backend && !o.done.Before(from) && o.done.Before(to) {
				n++
			}
		}
		return n
	}
	// countStarted counts the certificates from backend whose request started at or after from.
	countStarted := func(backend string, from time.Time) (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range outcomes {
			if o.backend == backend && !o.started.Before(from) {
				n++
			}
		}
		return n
	}

	time.Sleep(500 * time.Millisecond)
	stopAt := time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	time.Sleep(time.Second)
	restartAt := time.Now()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	end := time.Now()

	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed across the outage, want 0; first: %v", n, firstErr.Load())
	}
	if n := count("stepca", time.Time{}, stopAt); n == 0 {
		t.Error("step-ca signed nothing before the outage")
	}
	if n := count("file", time.Time{}, stopAt); n != 0 {
		t.Errorf("the file backend signed %d requests while step-ca was up, want 0", n)
	}
	if n := count("file", stopped, restartAt); n == 0 {
		t.Error("the file backend signed nothing while step-ca was down")
	}
	if n := count("stepca", stopped, restartAt); n != 0 {
		t.Errorf("step-ca signed %d requests while stopped", n)
	}
	// Once step-ca answers again, every request that starts goes to it.
	if n, f := countStarted("stepca", restarted), countStarted("file", restarted); n == 0 || f != 0 {
		t.Errorf("after restart: step-ca signed %d, file %d; want all traffic back on step-ca", n, f)
	}
	total := count("stepca", time.Time{}, end) + count("file", time.Time{}, end)
	// "0 failed" means something only if the load was real in every phase: each worker got certificates
	// before the outage, during it and after the restart.
	for _, phase := range []struct {
		name     string
		from, to time.Time
	}{{"before the outage", time.Time{}, stopAt}, {"during the outage", stopped, restartAt},
		{"after the restart", restarted, end}} {
		if n := count("stepca", phase.from, phase.to) + count("file", phase.from, phase.to); n < workers {
			t.Errorf("%d certificates %s, want at least %d (one per worker): the load was too thin to show "+
				"anything", n, phase.name, workers)
		}
	}
	t.Logf("%d certificates: step-ca %d, file %d (outage %s); step-ca restart took %s",
		total, count("stepca", time.Time{}, end), count("file", time.Time{}, end),
		restartAt.Sub(stopAt).Round(time.Millisecond), srv.StartupTime)
	if got, want := m.issuedBy(t, "stepca"), float64(count("stepca", time.Time{}, end)); got != want {
		t.Errorf("meshca_certificates_issued_total{backend=stepca} = %v, want %v", got, want)
	}
	if got, want := m.issuedBy(t, "file"), float64(count("file", time.Time{}, end)); got != want {
		t.Errorf("meshca_certificates_issued_total{backend=file} = %v, want %v", got, want)
	}
}

// TestIssuerMapsReplayToInternal: a replayed token reaches the core as neither unavailable nor refused, so it
// is counted as internal and does not fail over to the next backend.
func TestIssuerMapsReplayToInternal(t *testing.T) {
	srv := sharedServer(t)
	m := newMesh(t, srv, true, true)
	a := m.agent(t, 1)
	if _, err := m.issue(a); err != nil {
		t.Fatal(err)
	}
	res, err := m.issue(a)
	if err == nil {
		t.Fatalf("replayed token: issued by %s, want an error", res.Backend)
	}
	if got := ca.Reason(err); got != "internal" {
		t.Errorf("Reason(replay) = %q, want internal (%v)", got, err)
	}
	if n := m.issuedBy(t, "file"); n != 0 {
		t.Errorf("the file backend signed %v certificates; a replay must not fail over", n)
	}
}

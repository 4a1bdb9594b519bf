package crl_test

import (
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
)

type pubEnv struct {
	*env
	rootFile string
	reg      *prometheus.Registry
	m        *crl.Metrics
	pub      *crl.Publisher
}

// newPublisher serves e's chain: the intermediate's CRL is built here, the root's read from a file holding a
// root CRL valid for two days.
func newPublisher(t *testing.T, mutate ...func(*crl.PublisherConfig)) *pubEnv {
	t.Helper()
	pe := &pubEnv{reg: prometheus.NewRegistry()}
	m, err := crl.NewMetrics(pe.reg)
	if err != nil {
		t.Fatal(err)
	}
	pe.m = m
	pe.env = newEnv(t, func(c *crl.RegistryConfig) { c.Metrics = m })
	pe.rootFile = filepath.Join(t.TempDir(), "ca-crl.pem")
	pe.writeRoot(t, crl.EncodeBundle(pe.pki.RootCRL(t, 1, 48*time.Hour)))
	cfg := crl.PublisherConfig{
		Authorities: []crl.Authority{{Name: "cacerts", Chain: chainOf(pe.pki), Signer: pe.sign}},
		Registry:    pe.env.reg, Files: []string{pe.rootFile}, Interval: 50 * time.Millisecond,
		Clock: pe.clk.Now, Logger: discard(), Metrics: m,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	if pe.pub, err = crl.NewPublisher(cfg); err != nil {
		t.Fatal(err)
	}
	return pe
}

func chainOf(p *crltest.PKI) func(context.Context) ([]*x509.Certificate, error) {
	return func(context.Context) ([]*x509.Certificate, error) { return p.Chain(), nil }
}

func (pe *pubEnv) writeRoot(t *testing.T, data []byte) {
	t.Helper()
	if err := os.WriteFile(pe.rootFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// published parses the current ca-crl.pem.
func (pe *pubEnv) published(t *testing.T) []*x509.RevocationList {
	t.Helper()
	data, ok := pe.pub.PEM()
	if !ok {
		t.Fatal("PEM not ready")
	}
	lists, err := crl.ParseBundle(data)
	if err != nil {
		t.Fatalf("the published ca-crl.pem does not parse: %v", err)
	}
	return lists
}

func TestPublisherPublishesOneCRLPerCAOfTheChain(t *testing.T) {
	pe := newPublisher(t)
	if _, ok := pe.pub.PEM(); ok {
		t.Fatal("PEM ready before the first refresh")
	}
	rep := pe.pub.Refresh(context.Background())
	if !rep.Complete || rep.Err != nil {
		t.Fatalf("report: complete %v, %v", rep.Complete, rep.Err)
	}
	lists := pe.published(t)
	if len(lists) != 2 || !crl.Matches(lists[0], pe.pki.Inter) || !crl.Matches(lists[1], pe.pki.Root) {
		t.Fatalf("ca-crl.pem holds %d CRLs; want the intermediate's then the root's", len(lists))
	}
	der, ok := pe.pub.DER(crl.IDOf(pe.pki.Inter))
	if !ok || string(der) != string(lists[0].Raw) {
		t.Error("DER of the intermediate differs from its CRL in ca-crl.pem")
	}
	cs := pe.pub.CRLs()
	if cs[0].Origin != "meshca" || cs[1].Origin != "file "+pe.rootFile {
		t.Errorf("origins %q, %q", cs[0].Origin, cs[1].Origin)
	}
}

func TestPublisherPublishesNothingUnlessEveryCAIsCovered(t *testing.T) {
	for _, tc := range []struct {
		name       string
		failClosed bool
		want       int // CRLs in ca-crl.pem
	}{
		{"by default an incomplete set gives an empty ca-crl.pem", false, 0},
		{"with failClosed the incomplete set is published", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pe := newPublisher(t, func(c *crl.PublisherConfig) { c.FailClosed = tc.failClosed })
			pe.writeRoot(t, nil) // the operator published no root CRL
			rep := pe.pub.Refresh(context.Background())
			if rep.Complete || !errors.Is(rep.Err, crl.ErrMissingCRL) {
				t.Fatalf("report: complete %v, err %v; want incomplete with ErrMissingCRL", rep.Complete, rep.Err)
			}
			if got := len(pe.published(t)); got != tc.want {
				t.Fatalf("%d CRLs published, want %d", got, tc.want)
			}
			if v := gauge(t, pe.reg, "meshca_crl_coverage_complete", nil); v != 0 {
				t.Errorf("meshca_crl_coverage_complete = %v", v)
			}
		})
	}
}

func TestPublisherKeepsTheLastGoodCRLsOfABrokenFile(t *testing.T) {
	pe := newPublisher(t)
	ctx := context.Background()
	pe.pub.Refresh(ctx)
	good, _ := pe.pub.PEM()
	pe.writeRoot(t, []byte("-----BEGIN X509 CRL-----\nbroken\n"))
	if rep := pe.pub.Refresh(ctx); !rep.Complete {
		t.Fatalf("a broken file dropped its previous CRLs: %v", rep.Err)
	}
	if now, _ := pe.pub.PEM(); string(now) != string(good) {
		t.Fatal("ca-crl.pem changed when the file broke")
	}
	if v := gauge(t, pe.reg, "meshca_crl_publish_errors_total", map[string]string{"target": "file"}); v < 1 {
		t.Errorf("file errors counted: %v", v)
	}
	pe.writeRoot(t, []byte("\n")) // deliberately blank: no external CRLs any more
	if rep := pe.pub.Refresh(ctx); rep.Complete {
		t.Fatal("a blank file did not withdraw the root CRL")
	}
	pe.writeRoot(t, crl.EncodeBundle(pe.pki.RootCRL(t, 2, 48*time.Hour)))
	if rep := pe.pub.Refresh(ctx); !rep.Complete {
		t.Fatalf("a new root CRL did not restore coverage: %v", rep.Err)
	}
}

func TestPublisherReadsBundlesAsFiles(t *testing.T) {
	var content []byte
	var readErr error
	pe := newPublisher(t, func(c *crl.PublisherConfig) {
		c.Files = nil
		c.Bundles = []crl.Bundle{{Name: "cacerts secret", Read: func(context.Context) ([]byte, error) {
			return content, readErr
		}}}
	})
	content = crl.EncodeBundle(pe.pki.RootCRL(t, 1, 48*time.Hour))
	ctx := context.Background()
	if rep := pe.pub.Refresh(ctx); !rep.Complete {
		t.Fatal(rep.Err)
	}
	if o := pe.pub.CRLs()[1].Origin; o != "bundle cacerts secret" {
		t.Errorf("origin %q", o)
	}
	readErr = errors.New("API server unreachable")
	if rep := pe.pub.Refresh(ctx); !rep.Complete {
		t.Fatalf("a failing bundle dropped its last good CRLs: %v", rep.Err)
	}
	content, readErr = nil, nil
	if rep := pe.pub.Refresh(ctx); rep.Complete {
		t.Fatal("an empty bundle did not withdraw its CRLs")
	}
}

func TestPublisherFollowsRevocationsAtOnce(t *testing.T) {
	pe := newPublisher(t, func(c *crl.PublisherConfig) { c.Interval = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- pe.pub.Run(ctx) }()
	for _, ok := pe.pub.PEM(); !ok; _, ok = pe.pub.PEM() {
		time.Sleep(5 * time.Millisecond)
	}
	good, bad := pe.issue(t, idA, time.Hour), pe.issue(t, idB, time.Hour)
	chain := func(leaf *x509.Certificate) []*x509.Certificate {
		return []*x509.Certificate{leaf, pe.pki.Inter, pe.pki.Root}
	}
	changed := pe.pub.Changed()
	start := time.Now()
	req := crl.RevokeRequest{Serial: bad.SerialNumber, Reason: crl.KeyCompromise}
	if _, err := pe.env.reg.Revoke(ctx, req); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("ca-crl.pem did not change after a revocation")
	}
	t.Logf("revocation published in %s", time.Since(start).Round(time.Microsecond))
	if _, ok := listed(pe.published(t)[0], bad.SerialNumber); !ok {
		t.Fatal("the revoked serial is not in the published intermediate CRL")
	}
	if err := pe.pub.CheckChain(chain(bad)); !errors.Is(err, crl.ErrRevoked) {
		t.Errorf("CheckChain(revoked leaf) = %v, want ErrRevoked", err)
	}
	if err := pe.pub.CheckChain(chain(good)); err != nil {
		t.Errorf("CheckChain(good leaf) = %v", err)
	}
	n := gauge(t, pe.reg, "meshca_crl_number", map[string]string{"ca": string(crl.IDOf(pe.pki.Inter))})
	if want, _ := pe.published(t)[0].Number.Float64(); n != want {
		t.Errorf("meshca_crl_number = %v, want %v", n, want)
	}
	if v := gauge(t, pe.reg, "meshca_revocations_total", map[string]string{"reason": "keyCompromise"}); v != 1 {
		t.Errorf("meshca_revocations_total{reason=keyCompromise} = %v", v)
	}
	if v := gauge(t, pe.reg, "meshca_crl_entries", map[string]string{"ca": string(crl.IDOf(pe.pki.Inter))}); v != 1 {
		t.Errorf("meshca_crl_entries = %v", v)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPublisherReportsAStaleRootCRL(t *testing.T) {
	pe := newPublisher(t)
	pe.pub.Refresh(context.Background())
	rootID := map[string]string{"ca": string(crl.IDOf(pe.pki.Root))}
	next := gauge(t, pe.reg, "meshca_crl_next_update_timestamp_seconds", rootID)
	if want := float64(pe.pki.Now.Add(47 * time.Hour).Unix()); next != want {
		t.Fatalf("next update of the root CRL = %v, want %v", next, want)
	}
	pe.clk.Add(48 * time.Hour)
	rep := pe.pub.Refresh(context.Background())
	if rep.Complete || !errors.Is(rep.Err, crl.ErrStaleCRL) {
		t.Fatalf("report: complete %v, %v; want ErrStaleCRL", rep.Complete, rep.Err)
	}
	if len(pe.published(t)) != 0 {
		t.Error("a set with a stale CRL is published")
	}
}

type sourceFunc func(context.Context) ([]byte, error)

func (f sourceFunc) CRL(ctx context.Context) ([]byte, error) { return f(ctx) }

func TestPublisherTakesTheCRLOfABackendThatOwnsRevocation(t *testing.T) {
	vault := crltest.New(t, "vault")
	pe := newPublisher(t, func(c *crl.PublisherConfig) {
		c.Authorities = []crl.Authority{{Name: "vault", Chain: chainOf(vault),
			Source: sourceFunc(func(context.Context) ([]byte, error) {
				return crltest.CRL(t, vault.Inter, vault.InterKey, 1, vault.Now, vault.Now.Add(time.Hour)), nil
			})}}
	})
	pe.writeRoot(t, crl.EncodeBundle(vault.RootCRL(t, 1, 48*time.Hour)))
	if rep := pe.pub.Refresh(context.Background()); !rep.Complete {
		t.Fatal(rep.Err)
	}
	if o := pe.pub.CRLs()[0].Origin; o != "backend vault" {
		t.Fatalf("origin %q", o)
	}
}

func TestPublisherPrefersItsOwnCRLToAFileCRLOfTheSameCA(t *testing.T) {
	pe := newPublisher(t)
	foreign := crltest.CRL(t, pe.pki.Inter, pe.pki.InterKey, 1<<62, pe.pki.Now, pe.pki.Now.Add(time.Hour),
		big.NewInt(5))
	pe.writeRoot(t, crl.EncodeBundle(pe.pki.RootCRL(t, 1, 48*time.Hour), foreign))
	pe.pub.Refresh(context.Background())
	if c := pe.pub.CRLs()[0]; c.Origin != "meshca" || c.List.Number.Int64() == 1<<62 {
		t.Fatalf("the intermediate's CRL comes from %q (number %s)", c.Origin, c.List.Number)
	}
}

// rotating is a CA that a backend replaces, as the file backend does when cacerts change.
type rotating struct {
	mu sync.Mutex
	p  *crltest.PKI
}

func (r *rotating) get() *crltest.PKI {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p
}

func (r *rotating) set(p *crltest.PKI) {
	r.mu.Lock()
	r.p = p
	r.mu.Unlock()
}

func (r *rotating) chain(context.Context) ([]*x509.Certificate, error) { return r.get().Chain(), nil }

func (r *rotating) SignCRL(ctx context.Context, rl *x509.RevocationList) ([]byte, error) {
	p := r.get()
	return crl.KeySigner{CA: p.Inter, Key: p.InterKey}.SignCRL(ctx, rl)
}

func TestPublisherKeepsTheCRLOfARetiredCAWhileValid(t *testing.T) {
	var ca rotating
	pe := newPublisher(t, func(c *crl.PublisherConfig) {
		c.Authorities = []crl.Authority{{Name: "cacerts", Chain: ca.chain, Signer: &ca}}
	})
	ca.set(pe.pki)
	ctx := context.Background()
	pe.pub.Refresh(ctx)
	old := crl.IDOf(pe.pki.Inter)
	ca.set(pe.pki.NewIntermediate(t, "rotated"))
	if rep := pe.pub.Refresh(ctx); !rep.Complete {
		t.Fatal(rep.Err)
	}
	if n := len(pe.published(t)); n != 3 {
		t.Fatalf("%d CRLs after the rotation, want the new intermediate's, the root's and the old one's", n)
	}
	if _, ok := pe.pub.DER(old); !ok {
		t.Fatal("the retired intermediate's CRL vanished while still valid: its certificates would fail")
	}
	pe.clk.Add(24 * time.Hour)
	pe.pub.Refresh(ctx)
	if _, ok := pe.pub.DER(old); ok {
		t.Fatal("the retired intermediate's CRL is published past its nextUpdate")
	}
	mfs, _ := pe.reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "ca" && l.GetValue() == string(old) {
					t.Errorf("%s still has a series for the retired intermediate", mf.GetName())
				}
			}
		}
	}
}

// gauge returns the value of the metric name with labels (a counter or a gauge) in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := catest.Sample(t, reg, name, labels)
	if !ok {
		t.Fatalf("no metric %s%v", name, labels)
	}
	return v
}

// CheckChain answers for a renewal certificate as Envoy would: revoked, unknown (a CA without a current CRL),
// or good.
func TestCheckChainForRenewal(t *testing.T) {
	ctx := context.Background()
	pe := newPublisher(t)
	const id = "spiffe://cluster.local/ns/default/sa/sleep"
	good, revoked := pe.issue(t, id, time.Hour), pe.issue(t, id, time.Hour)
	chainOf := func(leaf *x509.Certificate) []*x509.Certificate {
		return []*x509.Certificate{leaf, pe.pki.Inter, pe.pki.Root}
	}
	if err := pe.pub.CheckChain(chainOf(good)); !errors.Is(err, crl.ErrMissingCRL) {
		t.Fatalf("before the first refresh: %v, want ErrMissingCRL", err)
	}
	rr := crl.RevokeRequest{Certificate: revoked, Reason: crl.KeyCompromise}
	if _, err := pe.env.reg.Revoke(ctx, rr); err != nil {
		t.Fatal(err)
	}
	pe.pub.Refresh(ctx)
	tests := []struct {
		name    string
		advance time.Duration
		leaf    *x509.Certificate
		want    error
	}{
		{"a certificate nobody revoked passes", 0, good, nil},
		{"a revoked certificate is refused", 0, revoked, crl.ErrRevoked},
		{"with the root's CRL past its nextUpdate the status is unknown", 48 * time.Hour, good, crl.ErrStaleCRL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pe.clk.Add(tt.advance)
			if tt.advance != 0 {
				pe.pub.Refresh(ctx)
			}
			if err := pe.pub.CheckChain(chainOf(tt.leaf)); !errors.Is(err, tt.want) {
				t.Fatalf("CheckChain = %v, want %v", err, tt.want)
			}
		})
	}
}

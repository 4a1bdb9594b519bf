package rotation_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/rotation"
)

// issued returns a Result as meshca would deliver it to sa: a leaf signed by g's intermediate, valid until
// notAfter, with the given roots as the trust bundle.
func issued(t testing.TB, g *file.Generated, sa string, notAfter time.Time, bundle ...*x509.Certificate) *ca.Result {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: notAfter.Add(-2 * time.Hour),
		NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, g.Intermediate, key.Public(), g.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	var pemBundle []byte
	for _, r := range bundle {
		pemBundle = append(pemBundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})...)
	}
	return &ca.Result{Chain: []*x509.Certificate{leaf, g.Intermediate, g.Root}, TrustBundle: pemBundle,
		Identity: csr.Identity{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: sa}}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestTrackerCountsWorkloadsHoldingTheNextRoot(t *testing.T) {
	oldCA, newCA := genCA(t), genCA(t)
	c := &clock{t: time.Now()}
	tr := rotation.NewTracker(rotation.TrackerConfig{MaxLifetime: time.Hour, Now: c.now,
		Started: c.t.Add(-time.Hour)})
	exp := c.t.Add(time.Hour)
	for _, sa := range []string{"a", "b", "c"} {
		tr.ObserveResult(issued(t, oldCA, sa, exp, oldCA.Root))
	}
	tr.SetTarget(newCA.Root)
	p := tr.Progress(1, rotation.PhasePrepared)
	if p.Holders != 3 || p.HoldingNext != 0 || len(p.Laggards) != 3 || !p.Complete {
		t.Fatalf("before renewals: %+v", p)
	}
	tr.ObserveResult(issued(t, oldCA, "a", exp, oldCA.Root, newCA.Root))
	if p = tr.Progress(1, rotation.PhasePrepared); p.HoldingNext != 1 || p.Gate() == nil {
		t.Fatalf("after one renewal: holding %d, gate %v; want 1 and closed", p.HoldingNext, p.Gate())
	}
	tr.ObserveResult(issued(t, oldCA, "b", exp, oldCA.Root, newCA.Root))
	tr.ObserveResult(issued(t, oldCA, "c", exp, oldCA.Root, newCA.Root))
	if p = tr.Progress(1, rotation.PhasePrepared); p.HoldingNext != 3 || p.Gate() != nil {
		t.Fatalf("after every renewal: holding %d, gate %v; want 3 and open", p.HoldingNext, p.Gate())
	}
	if p = tr.Progress(2, rotation.PhaseActivated); p.LeafNext != 0 || p.Gate() == nil {
		t.Fatalf("leaves from the old CA: leafNext %d, gate %v; want 0 and closed", p.LeafNext, p.Gate())
	}
	for _, sa := range []string{"a", "b", "c"} {
		tr.ObserveResult(issued(t, newCA, sa, exp, newCA.Root, oldCA.Root))
	}
	if p = tr.Progress(2, rotation.PhaseActivated); p.LeafNext != 3 || p.Gate() != nil {
		t.Fatalf("leaves from the new CA: leafNext %d, gate %v; want 3 and open", p.LeafNext, p.Gate())
	}
}

func TestTrackerForgetsExpiredCertificates(t *testing.T) {
	oldCA, newCA := genCA(t), genCA(t)
	c := &clock{t: time.Now()}
	tr := rotation.NewTracker(rotation.TrackerConfig{MaxLifetime: time.Hour, Now: c.now,
		Started: c.t.Add(-time.Hour)})
	tr.SetTarget(newCA.Root)
	tr.ObserveResult(issued(t, oldCA, "stuck", c.t.Add(10*time.Minute), oldCA.Root))
	tr.ObserveResult(issued(t, oldCA, "renewed", c.t.Add(time.Hour), oldCA.Root, newCA.Root))
	if p := tr.Progress(1, rotation.PhasePrepared); p.Gate() == nil || p.Laggards[0].Identity !=
		"spiffe://cluster.local/ns/ns/sa/stuck" {
		t.Fatalf("a workload that never renews must hold the gate and be named: %+v", p)
	}
	c.t = c.t.Add(11 * time.Minute)
	if p := tr.Progress(1, rotation.PhasePrepared); p.Holders != 1 || p.Gate() != nil {
		t.Fatalf("once its certificate has expired it must not: %+v, gate %v", p, p.Gate())
	}
}

func TestTrackerIsIncompleteUntilItHasSeenEveryCertificate(t *testing.T) {
	oldCA, newCA := genCA(t), genCA(t)
	c := &clock{t: time.Now()}
	tr := rotation.NewTracker(rotation.TrackerConfig{MaxLifetime: time.Hour, MaxIdentities: 1, Now: c.now})
	tr.SetTarget(newCA.Root)
	if p := tr.Progress(1, rotation.PhasePrepared); p.Complete || p.Gate() == nil {
		t.Fatalf("a tracker just started must be incomplete: %+v", p)
	}
	c.t = c.t.Add(time.Hour)
	tr.ObserveResult(issued(t, oldCA, "a", c.t.Add(30*time.Minute), oldCA.Root, newCA.Root))
	tr.ObserveResult(issued(t, oldCA, "over-the-cap", c.t.Add(40*time.Minute), oldCA.Root))
	p := tr.Progress(1, rotation.PhasePrepared)
	if p.Complete || p.Holders != 1 || tr.Dropped() != 1 {
		t.Fatalf("an untracked issuance must leave the tracker incomplete: %+v, dropped %d", p, tr.Dropped())
	}
	c.t = c.t.Add(41 * time.Minute)
	if p := tr.Progress(1, rotation.PhasePrepared); !p.Complete {
		t.Fatalf("once the untracked certificate has expired it must be complete: %+v", p)
	}
}

func TestTrackerDoesNotCountAnEarlierNextRoot(t *testing.T) {
	oldCA, first, second := genCA(t), genCA(t), genCA(t)
	c := &clock{t: time.Now()}
	tr := rotation.NewTracker(rotation.TrackerConfig{MaxLifetime: time.Hour, Now: c.now,
		Started: c.t.Add(-time.Hour)})
	tr.SetTarget(first.Root)
	tr.ObserveResult(issued(t, oldCA, "a", c.t.Add(time.Hour), oldCA.Root, first.Root))
	tr.SetTarget(second.Root)
	if p := tr.Progress(3, rotation.PhasePrepared); p.HoldingNext != 0 {
		t.Fatalf("a bundle with an aborted next root counted as holding the new one: %+v", p)
	}
}

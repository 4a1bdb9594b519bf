package crl_test

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openStore opens a file store at path, closed in Cleanup.
func openStore(t *testing.T, path string) *crl.FileStore {
	t.Helper()
	s, err := crl.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type env struct {
	pki   *crltest.PKI
	clk   *clock
	path  string
	store *crl.FileStore
	reg   *crl.Registry
	sign  crl.KeySigner
}

// newEnv makes a PKI, a file store in a temporary directory and a registry on it.
func newEnv(t *testing.T, mutate ...func(*crl.RegistryConfig)) *env {
	t.Helper()
	p := crltest.New(t, t.Name())
	e := &env{pki: p, clk: newClock(p.Now), path: filepath.Join(t.TempDir(), "revocations.json"),
		sign: crl.KeySigner{CA: p.Inter, Key: p.InterKey}}
	e.store = openStore(t, e.path)
	e.reg = e.registry(t, e.store, mutate...)
	return e
}

func (e *env) registry(t *testing.T, s crl.Store, mutate ...func(*crl.RegistryConfig)) *crl.Registry {
	t.Helper()
	cfg := crl.RegistryConfig{Store: s, Clock: e.clk.Now, Logger: discard()}
	for _, m := range mutate {
		m(&cfg)
	}
	r, err := crl.NewRegistry(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// issue records a new leaf for identity in the inventory and returns it.
func (e *env) issue(t *testing.T, identity string, ttl time.Duration) *x509.Certificate {
	t.Helper()
	leaf := e.pki.Leaf(t, identity, ttl)
	if err := e.reg.Record(crl.Issuance{Serial: leaf.SerialNumber, Identity: identity, CA: crl.IDOf(e.pki.Inter),
		NotAfter: leaf.NotAfter, IssuedAt: e.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	return leaf
}

// crlOf builds the intermediate's CRL.
func (e *env) crlOf(t *testing.T) *crl.CRL {
	t.Helper()
	c, err := e.reg.Issue(context.Background(), e.pki.Inter, e.sign)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func listed(l *x509.RevocationList, serial *big.Int) (x509.RevocationListEntry, bool) {
	for _, e := range l.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return e, true
		}
	}
	return x509.RevocationListEntry{}, false
}

func serials(rs []crl.Revocation) map[string]bool {
	m := map[string]bool{}
	for _, r := range rs {
		m[r.Serial.Text(16)] = true
	}
	return m
}

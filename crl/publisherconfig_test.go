package crl_test

import (
	"context"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
)

// recorder is a slog.Handler that keeps the level and message of the records it receives ("WARN msg").
type recorder struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newRecorder() recorder { return recorder{mu: &sync.Mutex{}, msgs: &[]string{}} }

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.msgs = append(*r.msgs, rec.Level.String()+" "+rec.Message)
	return nil
}

func (r recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r recorder) WithGroup(string) slog.Handler      { return r }

// count returns how many records had a level and message starting with prefix.
func (r recorder) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range *r.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

func TestPublisherWarnsOnceAboutAFileCRLItIgnores(t *testing.T) {
	rec := newRecorder()
	pe := newPublisher(t, func(c *crl.PublisherConfig) { c.Logger = slog.New(rec) })
	foreign := crltest.CRL(t, pe.pki.Inter, pe.pki.InterKey, 1<<62, pe.pki.Now, pe.pki.Now.Add(time.Hour),
		big.NewInt(5))
	pe.writeRoot(t, crl.EncodeBundle(pe.pki.RootCRL(t, 1, 48*time.Hour), foreign))
	for range 3 {
		pe.pub.Refresh(context.Background())
	}
	if n := rec.count("WARN a CRL of a CA that meshca signs for is ignored"); n != 1 {
		t.Fatalf("the configured logger got %d warnings about the shadowed CRL in 3 refreshes, want 1", n)
	}
}

func TestPublisherInfoNamesWhereEachCRLComesFrom(t *testing.T) {
	pe := newPublisher(t)
	pe.pub.Refresh(context.Background())
	for _, tc := range []struct {
		name, ca, origin string
	}{
		{"the intermediate's CRL is meshca's own", string(crl.IDOf(pe.pki.Inter)), "meshca"},
		{"the root's CRL comes from a file, named by kind without its path", string(crl.IDOf(pe.pki.Root)), "file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v := gauge(t, pe.reg, "meshca_crl_info", map[string]string{"ca": tc.ca, "origin": tc.origin}); v != 1 {
				t.Fatalf("meshca_crl_info = %v", v)
			}
		})
	}
}

func TestPublisherConfigDefaults(t *testing.T) {
	vault := crltest.New(t, "vault")
	source := sourceFunc(func(context.Context) ([]byte, error) {
		return crltest.CRL(t, vault.Inter, vault.InterKey, 1, vault.Now, vault.Now.Add(time.Hour)), nil
	})
	t.Run("a zero interval is valid: it means the default", func(t *testing.T) {
		if err := (&crl.PublisherConfig{}).Validate(); err != nil {
			t.Fatalf("Validate of a zero config: %v", err)
		}
	})
	t.Run("an authority without a signer needs no registry", func(t *testing.T) {
		cfg := crl.PublisherConfig{Authorities: []crl.Authority{{Name: "vault", Chain: chainOf(vault), Source: source}},
			Logger: discard()}
		if _, err := crl.NewPublisher(cfg); err != nil {
			t.Fatalf("NewPublisher: %v", err)
		}
	})
	t.Run("Run with the default interval runs until its context ends", func(t *testing.T) {
		p, err := crl.NewPublisher(crl.PublisherConfig{
			Authorities: []crl.Authority{{Name: "vault", Chain: chainOf(vault), Source: source}}, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.Run(ctx); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if _, ok := p.PEM(); !ok {
			t.Fatal("Run returned before its first refresh")
		}
	})
}

func TestPublisherLogsAnErrorOnceAndItsRecoveryOnce(t *testing.T) {
	rec := newRecorder()
	pe := newPublisher(t, func(c *crl.PublisherConfig) { c.Logger = slog.New(rec) })
	ctx := context.Background()
	good := crl.EncodeBundle(pe.pki.RootCRL(t, 1, 48*time.Hour))
	steps := []struct {
		name                    string
		root                    []byte
		errors, debugs, recover int // counts after the step
	}{
		{"a good file logs no recovery", good, 0, 0, 0},
		{"a broken file logs an error", []byte("-----BEGIN X509 CRL-----\nbroken\n"), 1, 0, 0},
		{"the same error again is logged at debug level", []byte("-----BEGIN X509 CRL-----\nbroken\n"), 1, 1, 0},
		{"the file repaired logs a recovery", good, 1, 1, 1},
		{"the file still good logs nothing more", good, 1, 1, 1},
	}
	for _, s := range steps {
		pe.writeRoot(t, s.root)
		pe.pub.Refresh(ctx)
		got := [3]int{rec.count("ERROR reading CRLs failed"), rec.count("DEBUG reading CRLs failed"),
			rec.count("INFO recovered")}
		if want := [3]int{s.errors, s.debugs, s.recover}; got != want {
			t.Fatalf("after %q: errors, debug repeats, recoveries = %v, want %v", s.name, got, want)
		}
	}
}

package stepca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/internal/testpki"
)

// warnings counts the warnings logged through it.
type warnings struct {
	slog.Handler
	n atomic.Int32
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		w.n.Add(1)
	}
	return nil
}

// x5cBackend is a Backend with an X5C provisioner whose credential is valid from credFrom to credUntil,
// backdating 30s; its warnings are counted.
func x5cBackend(credFrom, credUntil time.Time) (*Backend, *warnings) {
	w := &warnings{Handler: slog.DiscardHandler}
	x5c := &X5CConfig{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}
	cred := &credentialFile{cfg: x5c}
	cred.cur.Store(&credential{chain: []*x509.Certificate{{NotBefore: credFrom, NotAfter: credUntil}}})
	return &Backend{cfg: Config{Backdate: 30 * time.Second, Logger: slog.New(w), X5C: x5c},
		minter: &minter{kind: "X5C", cred: cred}}, w
}

// TestValidityStaysWithinTheX5CCredential: the period asked for is the TTL, backdated, but never outside the
// credential that signs the token; a credential with less than a minute left cannot sign.
func TestValidityStaysWithinTheX5CCredential(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	const ttl = time.Hour
	tests := []struct {
		name           string
		from, until    time.Time
		wantNB, wantNA time.Time
		unavailable    bool
	}{
		{"a long-lived credential leaves the period alone", now.Add(-time.Hour), now.Add(2 * time.Hour),
			now.Add(-30 * time.Second), now.Add(ttl - 30*time.Second), false},
		{"a fresh credential moves the start to its own", now.Add(-10 * time.Second), now.Add(2 * time.Hour),
			now.Add(-10 * time.Second), now.Add(ttl - 10*time.Second), false},
		{"a credential ending exactly with the period leaves it alone", now.Add(-time.Hour),
			now.Add(ttl - 30*time.Second), now.Add(-30 * time.Second), now.Add(ttl - 30*time.Second), false},
		{"a credential ending sooner caps the end", now.Add(-time.Hour), now.Add(30 * time.Minute),
			now.Add(-30 * time.Second), now.Add(30 * time.Minute), false},
		{"a credential with exactly a minute left still signs", now.Add(-time.Hour), now.Add(time.Minute),
			now.Add(-30 * time.Second), now.Add(time.Minute), false},
		{"a credential with less than a minute left cannot sign", now.Add(-time.Hour),
			now.Add(time.Minute - time.Second), time.Time{}, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := x5cBackend(tt.from, tt.until)
			nb, na, err := b.validity(now, ttl)
			if tt.unavailable {
				if !errors.Is(err, backends.ErrUnavailable) {
					t.Fatalf("validity: %v, want ErrUnavailable", err)
				}
				return
			}
			if err != nil || !nb.Equal(tt.wantNB) || !na.Equal(tt.wantNA) {
				t.Fatalf("validity = %s – %s, %v; want %s – %s", nb, na, err, tt.wantNB, tt.wantNA)
			}
		})
	}
	t.Run("a JWK provisioner has no window", func(t *testing.T) {
		b := &Backend{cfg: Config{Backdate: 30 * time.Second}, minter: &minter{kind: "JWK"}}
		nb, na, err := b.validity(now, ttl)
		if err != nil || !nb.Equal(now.Add(-30*time.Second)) || !na.Equal(nb.Add(ttl)) {
			t.Fatalf("validity = %s – %s, %v", nb, na, err)
		}
	})
	t.Run("the capping is logged once a minute", func(t *testing.T) {
		b, w := x5cBackend(now.Add(-time.Hour), now.Add(50*time.Minute))
		for _, at := range []int{0, 1, 59, 60, 119, 120} {
			if _, _, err := b.validity(now.Add(time.Duration(at)*time.Second), ttl); err != nil {
				t.Fatal(err)
			}
		}
		if n := w.n.Load(); n != 3 {
			t.Fatalf("%d warnings in 120 seconds, want 3 (at 0, 60 and 120 s)", n)
		}
	})
	t.Run("an unreadable credential makes the backend unavailable", func(t *testing.T) {
		cred := &credentialFile{cfg: &X5CConfig{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}}
		b := &Backend{cfg: Config{Backdate: 30 * time.Second}, minter: &minter{kind: "X5C", cred: cred}}
		if _, _, err := b.validity(now, ttl); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("validity: %v, want ErrUnavailable", err)
		}
	})
}

// TestServerCertificateIsVerifiedAgainstTheRoots: step-ca's TLS certificate must chain to the fetched roots
// (before the first fetch: the pinned ones) and name the URL's host.
func TestServerCertificateIsVerifiedAgainstTheRoots(t *testing.T) {
	p, other := newStepPKI(t), newStepPKI(t)
	serving := func(pk *stepPKI, host string, usage x509.ExtKeyUsage) *x509.Certificate {
		key := testpki.Key(t)
		return testpki.Sign(t, &x509.Certificate{NotBefore: pk.now.Add(-time.Minute), NotAfter: pk.now.Add(time.Hour),
			DNSNames: []string{host}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}}, pk.inter, key.Public(), pk.interKey)
	}
	good := serving(p, "step-ca.pki", x509.ExtKeyUsageServerAuth)
	pinned := func(roots ...*x509.Certificate) *Backend {
		b := &Backend{host: "step-ca.pki"}
		b.pin.Store(newAnchors(roots))
		return b
	}
	tests := []struct {
		name  string
		b     *Backend
		peers []*x509.Certificate
		ok    bool
	}{
		{"a certificate of a fetched root is trusted", trustedBackend(p, p.root),
			[]*x509.Certificate{good, p.inter}, true},
		{"a certificate of a pinned root is trusted before the first fetch", pinned(p.root),
			[]*x509.Certificate{good, p.inter}, true},
		{"the fetched roots replace the pinned ones", func() *Backend {
			b := trustedBackend(p, other.root)
			b.pin.Store(newAnchors([]*x509.Certificate{p.root}))
			return b
		}(), []*x509.Certificate{good, p.inter}, false},
		{"no roots at all trust nothing", &Backend{host: "step-ca.pki"}, []*x509.Certificate{good, p.inter}, false},
		{"no certificate is not trusted", pinned(p.root), nil, false},
		{"a certificate of another CA is not trusted", pinned(p.root),
			[]*x509.Certificate{serving(other, "step-ca.pki", x509.ExtKeyUsageServerAuth), other.inter}, false},
		{"a certificate for another host is not trusted", pinned(p.root),
			[]*x509.Certificate{serving(p, "evil.pki", x509.ExtKeyUsageServerAuth), p.inter}, false},
		{"a client certificate is not trusted as a server", pinned(p.root),
			[]*x509.Certificate{serving(p, "step-ca.pki", x509.ExtKeyUsageClientAuth), p.inter}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.b.host = "step-ca.pki"
			err := tt.b.verifyServer(tls.ConnectionState{PeerCertificates: tt.peers})
			if (err == nil) != tt.ok {
				t.Fatalf("verifyServer: %v, want trusted %v", err, tt.ok)
			}
			var trustErr *errServerTrust
			if err != nil && !errors.As(err, &trustErr) {
				t.Fatalf("verifyServer: %v is not an errServerTrust", err)
			}
		})
	}
}

// TestStaleRootsAreRefreshedInTheBackground: the cached roots are served at once; only once they are older than
// RootsRefresh does a refresh start (here against a step-ca that is not there, so it fails and is logged).
func TestStaleRootsAreRefreshedInTheBackground(t *testing.T) {
	p := newStepPKI(t)
	now := p.now
	b := trustedBackend(p, p.root)
	w := &warnings{Handler: slog.DiscardHandler}
	b.cfg.Logger, b.cfg.Timeout = slog.New(w), 2*time.Second
	b.base, _ = url.Parse("https://127.0.0.1:1")
	b.pin.Store(newAnchors([]*x509.Certificate{p.root}))
	b.client = b.newHTTPClient()
	for _, at := range []time.Duration{0, time.Hour} {
		p.now = now.Add(at)
		if st, err := b.trust(t.Context()); err != nil || !st.roots[0].Equal(p.root) {
			t.Fatalf("trust at +%s = %v, %v", at, st, err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if w.n.Load() != 0 || b.refreshing.Load() {
		t.Fatal("roots exactly RootsRefresh old were refreshed")
	}
	p.now = now.Add(time.Hour + time.Nanosecond)
	if st, err := b.trust(t.Context()); err != nil || !st.roots[0].Equal(p.root) {
		t.Fatalf("trust of stale roots = %v, %v; want the cached roots at once", st, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.n.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if w.n.Load() != 1 {
		t.Fatalf("%d refresh failures logged, want 1", w.n.Load())
	}
}

// TestSignAsksStepCAOnceTheRootsAreKnown: with step-ca's roots in hand, Sign mints a token and sends the
// request (here to a step-ca that is not there: ErrUnavailable); a request it cannot sign is never sent.
func TestSignAsksStepCAOnceTheRootsAreKnown(t *testing.T) {
	p := newStepPKI(t)
	b := trustedBackend(p, p.root)
	b.cfg.Timeout, b.cfg.Backdate, b.cfg.Logger = 2*time.Second, 30*time.Second, slog.New(slog.DiscardHandler)
	b.base, _ = url.Parse("https://127.0.0.1:1")
	b.client = b.newHTTPClient()
	b.minter = &minter{kind: "JWK", name: "meshca", lifetime: time.Minute,
		jwk: &jose.JSONWebKey{Key: testpki.Key(t), KeyID: "k", Algorithm: "ES256"}}
	resp, err := b.Sign(t.Context(), p.request(t, nil))
	if resp != nil || !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Sign = %v, %v; want ErrUnavailable from the absent step-ca", resp, err)
	}
	resp, err = b.Sign(t.Context(), p.request(t, func(r *backends.SignRequest) { r.TTL = 0 }))
	if resp != nil || !errors.Is(err, backends.ErrRefused) || errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Sign of a zero TTL = %v, %v; want ErrRefused before sending", resp, err)
	}
}

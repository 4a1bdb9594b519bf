package kube

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The tests in *_local_internal_test.go run in short mode, without an API server: they check what meshca decides
// before it asks one (or without asking), with real tokens signed by a real key and a real client-go client
// whose API server does not exist. A test that reached the API server would get ErrUnavailable, which is how
// they tell "refused locally" from "sent".

// unreachableClient is a real client for an API server that refuses connections at once (port 1 on loopback).
func unreachableClient(t testing.TB) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// levels counts the records logged through it by level.
type levels struct {
	slog.Handler
	mu sync.Mutex
	n  map[slog.Level]int
}

func newLevels() *levels { return &levels{Handler: slog.DiscardHandler, n: map[slog.Level]int{}} }

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }

func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[r.Level]++
	return nil
}

func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }

func (l *levels) count(level slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[level]
}

// tokenClaims are the claims of a token that signToken makes; the zero values leave a claim out.
type tokenClaims struct {
	sub      string
	iat, exp time.Time
	pad      int // bytes of an extra claim, to reach a given token size
}

// signToken returns a compact ES256 JWS of c, signed by a key of its own: the structure of a service-account
// token, which only an API server could refuse.
func signToken(t testing.TB, c tokenClaims) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.Claims{Issuer: "https://kubernetes.default.svc.cluster.local", Subject: c.sub,
		Audience: jwt.Audience{"istio-ca"}}
	if !c.iat.IsZero() {
		claims.IssuedAt = jwt.NewNumericDate(c.iat)
	}
	if !c.exp.IsZero() {
		claims.Expiry = jwt.NewNumericDate(c.exp)
	}
	b := jwt.Signed(signer).Claims(claims)
	if c.pad > 0 {
		b = b.Claims(map[string]any{"pad": strings.Repeat("p", c.pad)})
	}
	tok, err := b.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// liveToken is a token of service account ns/sa issued at now, valid for ten minutes.
func liveToken(t testing.TB, now time.Time) string {
	t.Helper()
	return signToken(t, tokenClaims{sub: "system:serviceaccount:ns:sa", iat: now, exp: now.Add(10 * time.Minute)})
}

// sizedToken is a live token exactly n bytes long (ES256 signatures have a fixed size, so only the padding claim
// changes the length; n must not be 1 modulo 4 past the fixed parts, which base64 cannot make).
func sizedToken(t testing.TB, now time.Time, n int) string {
	t.Helper()
	c := tokenClaims{sub: "system:serviceaccount:ns:sa", iat: now, exp: now.Add(10 * time.Minute), pad: 1}
	est := 1 + (n-len(signToken(t, c)))*3/4
	for c.pad = max(est-4, 1); c.pad <= est+4; c.pad++ {
		if tok := signToken(t, c); len(tok) == n {
			return tok
		}
	}
	t.Fatalf("no token of exactly %d bytes", n)
	return ""
}

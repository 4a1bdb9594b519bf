package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca/authn"
)

const jwksIssuer = "https://issuer.jwks.test"

// jwksServer is a real HTTPS JWKS endpoint whose behaviour a test switches: serve, hang or fail.
type jwksServer struct {
	*httptest.Server
	key     *ecdsa.PrivateKey
	kid     string
	mode    atomic.Value // "serve", "hang", "fail"
	fetches atomic.Int64
	release chan struct{}
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &jwksServer{key: key, kid: "k1", release: make(chan struct{})}
	s.mode.Store("serve")
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		switch s.mode.Load() {
		case "hang":
			select {
			case <-s.release:
			case <-r.Context().Done():
			}
			return
		case "fail":
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &s.key.PublicKey, KeyID: s.kid, Algorithm: "ES256",
			Use: "sig"}}}
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(func() {
		close(s.release)
		s.Close()
	})
	return s
}

// token signs a service-account token with the server's key under kid.
func (s *jwksServer) token(t *testing.T, kid string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: jwksIssuer, Subject: "system:serviceaccount:default:sleep",
		Audience: jwt.Audience{authn.DefaultAudience}, IssuedAt: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *jwksServer) jwt(t *testing.T, mod func(*authn.RemoteKeysConfig)) (*authn.JWT, *authn.RemoteKeys) {
	t.Helper()
	cfg := authn.RemoteKeysConfig{Issuer: jwksIssuer, JWKSURL: s.URL + "/jwks", HTTPClient: s.Client(),
		Timeout: time.Second, Refresh: 50 * time.Millisecond, MinRefresh: 20 * time.Millisecond,
		Logger: discardLogger()}
	if mod != nil {
		mod(&cfg)
	}
	keys, err := authn.NewRemoteKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: jwksIssuer, Keys: keys}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j, keys
}

// TestRemoteKeysServeCachedKeysWhileEndpointHangs is hole 6 of issue 15: once the keys are stale and the
// JWKS endpoint hangs, every authentication still answers at once from the cached keys; one refresh is in
// flight, not one per request.
func TestRemoteKeysServeCachedKeysWhileEndpointHangs(t *testing.T) {
	s := newJWKSServer(t)
	j, _ := s.jwt(t, nil)
	tok := s.token(t, s.kid)
	ctx := context.Background()
	if _, err := j.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
		t.Fatal(err)
	}
	s.mode.Store("hang")
	time.Sleep(80 * time.Millisecond) // past Refresh: the keys are stale
	var wg sync.WaitGroup
	var slowest atomic.Int64
	for range 8 {
		wg.Go(func() {
			start := time.Now()
			if _, err := j.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
				t.Errorf("with stale keys and a hung endpoint: %v, want the cached keys to verify", err)
			}
			if d := int64(time.Since(start)); d > slowest.Load() {
				slowest.Store(d)
			}
		})
	}
	wg.Wait()
	if d := time.Duration(slowest.Load()); d > 200*time.Millisecond {
		t.Fatalf("slowest authentication took %s while the JWKS endpoint hung, want it served from cache", d)
	}
	if n := s.fetches.Load(); n > 2 {
		t.Fatalf("%d fetches: want the first and at most one refresh in flight", n)
	}
}

// TestRemoteKeysStalenessIsBounded: cached keys are served for at most MaxStale after the last successful
// fetch; then, with the endpoint still failing, authentication is unavailable rather than trusting old keys
// forever. Failures are counted, and a recovered endpoint is used again.
func TestRemoteKeysStalenessIsBounded(t *testing.T) {
	s := newJWKSServer(t)
	reg := prometheus.NewRegistry()
	m, err := authn.NewKeysMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := s.jwt(t, func(c *authn.RemoteKeysConfig) { c.MaxStale = 300 * time.Millisecond; c.Metrics = m })
	tok := s.token(t, s.kid)
	ctx := context.Background()
	if _, err := j.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
		t.Fatal(err)
	}
	s.mode.Store("fail")
	time.Sleep(100 * time.Millisecond)
	if _, err := j.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
		t.Fatalf("within MaxStale: %v, want the cached keys", err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := j.Authenticate(ctx, &authn.Request{Token: tok}); !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("past MaxStale with the endpoint down: %v, want ErrUnavailable", err)
	}
	if n := counterValue(t, reg, "meshca_jwks_refresh_total", "error"); n < 1 {
		t.Fatalf("meshca_jwks_refresh_total{result=error} = %g, want failures counted", n)
	}
	s.mode.Store("serve")
	time.Sleep(200 * time.Millisecond) // past any backoff
	if _, err := j.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
		t.Fatalf("endpoint back: %v", err)
	}
}

// TestRemoteKeysBackOffWhileFailing: a failing endpoint is not fetched once per request: refreshes back off,
// however many requests arrive, and unknown key IDs do not bypass the backoff.
func TestRemoteKeysBackOffWhileFailing(t *testing.T) {
	s := newJWKSServer(t)
	j, _ := s.jwt(t, func(c *authn.RemoteKeysConfig) {
		c.Refresh, c.MinRefresh = 10*time.Millisecond, 50*time.Millisecond
	})
	tok := s.token(t, s.kid)
	ctx := context.Background()
	if _, err := j.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
		t.Fatal(err)
	}
	s.mode.Store("fail")
	before := s.fetches.Load()
	deadline := time.Now().Add(500 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		_, _ = j.Authenticate(ctx, &authn.Request{Token: tok})
		_, _ = j.Authenticate(ctx, &authn.Request{Token: s.token(t, "unknown-"+itoa(i))})
		time.Sleep(2 * time.Millisecond)
	}
	// 500ms with a 50ms base doubling: attempts at about 0, 50, 150, 350ms.
	if n := s.fetches.Load() - before; n > 6 {
		t.Fatalf("%d fetches of a failing endpoint in 500ms, want a backoff (at most 6)", n)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func itoa(n int) string { return strconv.Itoa(n) }

// counterValue is the value of the counter name whose result label is result.
func counterValue(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == name && l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

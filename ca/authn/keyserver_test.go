package authn_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// keyServer is a real HTTPS OIDC discovery and JWKS endpoint whose keys, discovery document and health a test
// changes as it goes. Every request is counted and signalled on requests.
type keyServer struct {
	*httptest.Server
	mu        sync.Mutex
	keys      map[string]*ecdsa.PrivateKey
	discovery string // the body of /.well-known/openid-configuration; empty: 404
	bearer    string // the bearer token every request must carry, when set
	jwks      string // the JWKS body, when set instead of the keys'
	fail      atomic.Bool
	hang      atomic.Bool // requests wait for the client to give up
	fetches   atomic.Int64
	requests  chan string // the path of every request
}

func newKeyServer(t *testing.T) *keyServer {
	t.Helper()
	s := &keyServer{keys: map[string]*ecdsa.PrivateKey{"k1": edgeKey(t)}, requests: make(chan string, 1000)}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *keyServer) serve(w http.ResponseWriter, r *http.Request) {
	s.fetches.Add(1)
	s.requests <- r.URL.Path
	if s.hang.Load() {
		<-r.Context().Done()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.fail.Load():
		http.Error(w, "down", http.StatusServiceUnavailable)
	case s.bearer != "" && r.Header.Get("Authorization") != "Bearer "+s.bearer:
		http.Error(w, "who are you", http.StatusUnauthorized)
	case r.URL.Path == "/.well-known/openid-configuration" && s.discovery != "":
		_, _ = w.Write([]byte(s.discovery))
	case r.URL.Path == "/.well-known/openid-configuration":
		http.NotFound(w, r)
	case s.jwks != "":
		_, _ = w.Write([]byte(s.jwks))
	default:
		set := jose.JSONWebKeySet{}
		for kid, k := range s.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
		}
		_ = json.NewEncoder(w).Encode(set)
	}
}

// key returns the signing key of kid, adding a new one when there is none.
func (s *keyServer) key(t *testing.T, kid string) *ecdsa.PrivateKey {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys[kid] == nil {
		s.keys[kid] = edgeKey(t)
	}
	return s.keys[kid]
}

// token signs a valid token of iss for default/sleep with the key of kid.
func (s *keyServer) token(t *testing.T, iss, kid string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.key(t, kid)},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	c := edgeClaims()
	c["iss"] = iss
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// noRequestWithin fails the test when the server is asked anything within d.
func (s *keyServer) noRequestWithin(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case p := <-s.requests:
		t.Fatalf("%s: the server was asked for %s, want no request", what, p)
	case <-time.After(d):
	}
}

// drain forgets the requests signalled so far.
func (s *keyServer) drain() {
	for {
		select {
		case <-s.requests:
		default:
			return
		}
	}
}

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// levelRecorder is a slog handler that keeps the level and message of every record.
type levelRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *levelRecorder) WithGroup(string) slog.Handler            { return h }

func (h *levelRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// wait returns the n-th record (from 1), waiting up to 5s for it.
func (h *levelRecorder) wait(t *testing.T, n int) slog.Record {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		h.mu.Lock()
		if len(h.records) >= n {
			r := h.records[n-1]
			h.mu.Unlock()
			return r
		}
		h.mu.Unlock()
	}
	t.Fatalf("no log record %d within 5s", n)
	return slog.Record{}
}

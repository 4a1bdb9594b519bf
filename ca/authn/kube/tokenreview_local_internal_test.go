package kube

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshca/meshca/ca/authn"
)

// localReview is a TokenReview whose API server does not exist, on a clock the test sets, with its metrics on a
// registry of its own.
type localReview struct {
	*TokenReview
	now     time.Time
	metrics *TokenReviewMetrics
}

func newLocalReview(t *testing.T, edit func(*TokenReviewConfig)) *localReview {
	t.Helper()
	m, err := NewTokenReviewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	lr := &localReview{now: time.Unix(1_900_000_000, 0), metrics: m}
	cfg := TokenReviewConfig{Client: unreachableClient(t), ClusterID: "c1", Metrics: m, Timeout: 2 * time.Second,
		Clock: func() time.Time { return lr.now }}
	if edit != nil {
		edit(&cfg)
	}
	if lr.TokenReview, err = NewTokenReview(cfg); err != nil {
		t.Fatal(err)
	}
	return lr
}

func (lr *localReview) auth(token, clusterID string) (*authn.Caller, error) {
	return lr.Authenticate(context.Background(), &authn.Request{Token: token, ClusterID: clusterID})
}

// counted returns meshca_tokenreview_requests_total (reviews) or the cache counter for cluster c1.
func (lr *localReview) counted(cache bool, result string) float64 {
	v := lr.metrics.reviews
	if cache {
		v = lr.metrics.cache
	}
	return testutil.ToFloat64(v.WithLabelValues("c1", result))
}

func keyOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return string(sum[:])
}

// TestTokenReviewDecidesLocallyBeforeAsking: what TokenReview refuses without an API server, and what it sends
// (the unreachable API server makes a sent review ErrUnavailable).
func TestTokenReviewDecidesLocallyBeforeAsking(t *testing.T) {
	lr := newLocalReview(t, nil)
	now := lr.now
	tests := []struct {
		name      string
		token     func(t *testing.T) string
		clusterID string
		want      error
		sent      bool
	}{
		{"an empty token is no credential", func(*testing.T) string { return "" }, "", authn.ErrNoCredential, false},
		{"a token past the size limit is refused", func(t *testing.T) string {
			return sizedToken(t, now, authn.MaxTokenSize+2)
		}, "", authn.ErrUnauthenticated, false},
		{"a token of exactly the size limit is sent", func(t *testing.T) string {
			return sizedToken(t, now, authn.MaxTokenSize)
		}, "", authn.ErrUnavailable, true},
		{"a clusterid header naming another cluster is refused", func(t *testing.T) string {
			return liveToken(t, now)
		}, "c2", authn.ErrUnauthenticated, false},
		{"a clusterid header naming this cluster is sent", func(t *testing.T) string {
			return liveToken(t, now)
		}, "c1", authn.ErrUnavailable, true},
		{"a live token without clusterid header is sent", func(t *testing.T) string {
			return liveToken(t, now)
		}, "", authn.ErrUnavailable, true},
		{"an expired token is refused without a review", func(t *testing.T) string {
			return signToken(t, tokenClaims{sub: "system:serviceaccount:ns:sa", iat: now.Add(-time.Hour),
				exp: now.Add(-time.Hour + 10*time.Minute)})
		}, "", authn.ErrUnauthenticated, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := lr.Stats().Reviews
			c, err := lr.auth(tt.token(t), tt.clusterID)
			if c != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Authenticate = %v, %v; want %v", c, err, tt.want)
			}
			if sent := lr.Stats().Reviews > before; sent != tt.sent {
				t.Fatalf("review sent: %v, want %v (%v)", sent, tt.sent, err)
			}
		})
	}
	// The three sent tokens failed (error), the expired one was malformed; the checks before the cache count nothing.
	if got := lr.counted(false, "error"); got != 3 {
		t.Errorf("reviews counted as error: %v, want 3", got)
	}
	if got := lr.counted(false, "malformed"); got != 1 {
		t.Errorf("tokens counted as malformed: %v, want 1", got)
	}
	if got := lr.counted(true, "miss"); got != 4 {
		t.Errorf("cache misses counted: %v, want 4", got)
	}
	if lr.Stats().Cached+lr.Stats().Refusals != 0 {
		t.Errorf("an API server error was cached: %+v", lr.Stats())
	}
	if n := testutil.CollectAndCount(lr.metrics.duration); n != 1 {
		t.Errorf("%d series of meshca_tokenreview_duration_seconds, want the reviews' one", n)
	}
}

// TestTokenReviewAnswersFromItsCaches: a stored success or refusal is the answer, without a review, until its
// deadline; a success never outlives the token, a refusal lasts NegativeTTL, and callers get copies.
func TestTokenReviewAnswersFromItsCaches(t *testing.T) {
	refused := fmt.Errorf("%w: TokenReview: refused for the test", authn.ErrUnauthenticated)
	t.Run("a cached success is answered as a copy, until the token's exp", func(t *testing.T) {
		lr := newLocalReview(t, nil) // CacheTTL 1m
		tok := signToken(t, tokenClaims{sub: "system:serviceaccount:ns:sa", iat: lr.now,
			exp: lr.now.Add(30 * time.Second)})
		lr.store(keyOf(tok), tok, &reviewResult{caller: &authn.Caller{Namespace: "ns", ServiceAccount: "sa"}})
		c, err := lr.auth(tok, "")
		if err != nil || c.Namespace != "ns" {
			t.Fatalf("Authenticate = %+v, %v; want the cached caller", c, err)
		}
		c.Namespace = "kube-system"
		lr.now = lr.now.Add(29 * time.Second)
		if c, err := lr.auth(tok, ""); err != nil || c.Namespace != "ns" {
			t.Fatalf("second Authenticate = %+v, %v; want the cached caller unchanged", c, err)
		}
		if st := lr.Stats(); st.Reviews != 0 || st.CacheHits != 2 || st.Cached != 1 {
			t.Fatalf("stats %+v, want 2 hits, 1 cached and no review", st)
		}
		if got := lr.counted(true, "hit"); got != 2 {
			t.Fatalf("cache hits counted: %v, want 2", got)
		}
		lr.now = lr.now.Add(time.Second) // the token's exp: the cached answer is gone, the token is sent
		if _, err := lr.auth(tok, ""); !errors.Is(err, authn.ErrUnavailable) || lr.Stats().Reviews != 1 {
			t.Fatalf("Authenticate at exp: %v after %d reviews; want a review (ErrUnavailable)", err,
				lr.Stats().Reviews)
		}
	})
	t.Run("a cached refusal is answered for NegativeTTL, apart from successes", func(t *testing.T) {
		lr := newLocalReview(t, nil) // NegativeTTL 5s
		tok := liveToken(t, lr.now)
		lr.store(keyOf(tok), tok, &reviewResult{err: refused})
		if st := lr.Stats(); st.Refusals != 1 || st.Cached != 0 {
			t.Fatalf("stats %+v, want the refusal in the negative cache only", st)
		}
		lr.now = lr.now.Add(5*time.Second - time.Nanosecond)
		if _, err := lr.auth(tok, ""); !errors.Is(err, refused) {
			t.Fatalf("Authenticate: %v, want the cached refusal", err)
		}
		lr.now = lr.now.Add(time.Nanosecond)
		if _, err := lr.auth(tok, ""); !errors.Is(err, authn.ErrUnavailable) {
			t.Fatalf("Authenticate after NegativeTTL: %v, want a review (ErrUnavailable)", err)
		}
	})
	t.Run("a success is looked up before a refusal", func(t *testing.T) {
		lr := newLocalReview(t, nil)
		tok := liveToken(t, lr.now)
		lr.negative.put(keyOf(tok), &reviewResult{err: refused}, lr.now.Add(time.Minute))
		lr.cache.put(keyOf(tok), &reviewResult{caller: &authn.Caller{Namespace: "ns"}}, lr.now.Add(time.Minute))
		if c, err := lr.auth(tok, ""); err != nil || c.Namespace != "ns" {
			t.Fatalf("Authenticate = %+v, %v; want the cached success", c, err)
		}
	})
	tests := []struct {
		name   string
		edit   func(*TokenReviewConfig)
		exp    time.Duration // of the token, from now
		result *reviewResult
	}{
		{"a success is not cached when the token expires now", nil, 0,
			&reviewResult{caller: &authn.Caller{}}},
		{"a success is not cached when caching is off", func(c *TokenReviewConfig) { c.CacheTTL = -1 }, time.Hour,
			&reviewResult{caller: &authn.Caller{}}},
		{"a refusal is not cached when negative caching is off",
			func(c *TokenReviewConfig) { c.NegativeTTL = -1 }, time.Hour, &reviewResult{err: refused}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lr := newLocalReview(t, tt.edit)
			tok := signToken(t, tokenClaims{sub: "system:serviceaccount:ns:sa", iat: lr.now.Add(-time.Minute),
				exp: lr.now.Add(tt.exp)})
			lr.store(keyOf(tok), tok, tt.result)
			if st := lr.Stats(); st.Cached+st.Refusals != 0 {
				t.Fatalf("stats %+v, want nothing cached", st)
			}
		})
	}
}

// TestTokenReviewDefaults: the tunables a configuration leaves out.
func TestTokenReviewDefaults(t *testing.T) {
	tr, err := NewTokenReview(TokenReviewConfig{Client: unreachableClient(t), MaxTokenLifetime: -1})
	if err != nil {
		t.Fatal(err)
	}
	c := tr.cfg
	if c.ClusterID != authn.DefaultClusterID || !slices.Equal(c.Audiences, []string{authn.DefaultAudience}) ||
		c.CacheTTL != time.Minute || c.NegativeTTL != 5*time.Second || c.CacheSize != 4096 ||
		c.NegativeCacheSize != 1024 || c.MaxConcurrentReviews != 16 || cap(tr.slots) != 16 ||
		c.MaxTokenLifetime != authn.DefaultMaxTokenLifetime || c.Timeout != 5*time.Second ||
		c.Clock == nil || c.Logger == nil || tr.cache.max != 4096 || tr.negative.max != 1024 {
		t.Fatalf("defaults: %+v", c)
	}
	set := TokenReviewConfig{Client: unreachableClient(t), ClusterID: "c9", Audiences: []string{"a"},
		CacheTTL: 2 * time.Minute, NegativeTTL: time.Second, CacheSize: 3, NegativeCacheSize: 2,
		MaxConcurrentReviews: 1, MaxTokenLifetime: time.Hour, Timeout: time.Second}
	tr, err = NewTokenReview(set)
	if err != nil {
		t.Fatal(err)
	}
	c = tr.cfg
	if c.ClusterID != "c9" || !slices.Equal(c.Audiences, []string{"a"}) || c.CacheTTL != 2*time.Minute ||
		c.NegativeTTL != time.Second || c.CacheSize != 3 || c.NegativeCacheSize != 2 || cap(tr.slots) != 1 ||
		c.MaxTokenLifetime != time.Hour || c.Timeout != time.Second {
		t.Fatalf("configured values were replaced: %+v", c)
	}
}

// TestTokenReviewSettingsAtTheirEdges: zero is every tunable's "default", so only negatives are refused, and
// each refusal names its key.
func TestTokenReviewSettingsAtTheirEdges(t *testing.T) {
	if err := (&TokenReviewConfig{}).validateSettings("p."); err != nil {
		t.Fatalf("zero settings refused: %v", err)
	}
	tests := []struct {
		name string
		cfg  TokenReviewConfig
		key  string
	}{
		{"an empty audience is refused", TokenReviewConfig{Audiences: []string{"a", ""}}, "p.audiences"},
		{"a negative cache size is refused", TokenReviewConfig{CacheSize: -1}, "p.cacheSize"},
		{"a negative refusal cache size is refused", TokenReviewConfig{NegativeCacheSize: -1}, "negativeCacheSize"},
		{"an unknown withIssuers is refused", TokenReviewConfig{WithIssuers: "both"}, "p.withIssuers"},
		{"a negative review limit is refused", TokenReviewConfig{MaxConcurrentReviews: -1},
			"p.maxConcurrentReviews"},
		{"a negative timeout is refused", TokenReviewConfig{Timeout: -1}, "p.timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.validateSettings("p.")
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("validateSettings: %v, want an error naming %s", err, tt.key)
			}
		})
	}
	if err := (&TokenReviewConfig{}).Validate(); err == nil || !strings.Contains(err.Error(), "client") {
		t.Fatalf("Validate without a client: %v", err)
	}
}

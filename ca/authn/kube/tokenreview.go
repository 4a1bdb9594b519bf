package kube

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/ca/authn"
)

// Keys of TokenReview status.user.extra set by the API server for pod-bound service-account tokens.
const (
	ExtraPodName  = "authentication.kubernetes.io/pod-name"
	ExtraPodUID   = "authentication.kubernetes.io/pod-uid"
	ExtraNodeName = "authentication.kubernetes.io/node-name"
)

// TokenReviewConfig configures TokenReview. Its tunables are the kubernetes.tokenReview section of meshca's
// configuration file; the fields without a JSON key are wiring, set by New.
type TokenReviewConfig struct {
	// Client reaches the API server that validates tokens (in-cluster config or a kubeconfig; see
	// LoadRESTConfig). Its identity needs "create" on tokenreviews.authentication.k8s.io.
	Client kubernetes.Interface `json:"-"`
	// Audiences are sent with each review; the API server must echo at least one back.
	// Default [authn.DefaultAudience].
	Audiences []string `json:"audiences,omitempty"`
	// ClusterID is the cluster of the API server Client reaches, and so the caller's cluster
	// (Caller.ClusterID); the clusterid header must name it or be empty. Default authn.DefaultClusterID.
	ClusterID string `json:"-"`
	// CacheTTL bounds how long a successful review is reused; it is never reused past the token's own exp.
	// Default 1m; negative disables caching.
	CacheTTL time.Duration `json:"cacheTTL,omitempty"`
	// NegativeTTL is how long a refusal is remembered, so a client retrying a bad token does not turn into a
	// TokenReview per retry. Default 5s; negative disables. Errors (API server unreachable) are never cached.
	NegativeTTL time.Duration `json:"negativeTTL,omitempty"`
	// CacheSize bounds the number of cached tokens; the least recently used is evicted. Default 4096.
	CacheSize int `json:"cacheSize,omitempty"`
	// Timeout bounds one review. Default 5s.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Metrics, when set, counts reviews and cache hits; share one between the clusters of a MultiCluster.
	Metrics *TokenReviewMetrics `json:"-"`
	// Clock returns the current time; default time.Now.
	Clock  func() time.Time `json:"-"`
	Logger *slog.Logger     `json:"-"`
}

// TokenReviewMetrics are the Prometheus metrics of TokenReview authenticators, labelled by cluster ID
// ("" for a TokenReview without one).
type TokenReviewMetrics struct {
	reviews  *prometheus.CounterVec
	cache    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewTokenReviewMetrics registers the metrics on reg (nil: unregistered):
// meshca_tokenreview_requests_total{cluster,result="authenticated|refused|error"},
// meshca_tokenreview_cache_requests_total{cluster,result="hit|miss"} and
// meshca_tokenreview_duration_seconds{cluster}.
func NewTokenReviewMetrics(reg prometheus.Registerer) (*TokenReviewMetrics, error) {
	m := &TokenReviewMetrics{
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_tokenreview_requests_total",
			Help: "TokenReviews sent to the API server, by outcome."}, []string{"cluster", "result"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_tokenreview_cache_requests_total",
			Help: "Token authentications answered from the TokenReview cache (hit) or not (miss)."},
			[]string{"cluster", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meshca_tokenreview_duration_seconds",
			Help:    "Round trip of one TokenReview.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"cluster"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.reviews, m.cache, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("kube: registering TokenReview metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Validate reports every problem with c at once. It has no side effects.
func (c *TokenReviewConfig) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("kube: tokenreview: a Kubernetes client is required"))
	}
	return errors.Join(append(errs, c.validateSettings("kube: tokenreview: "))...)
}

// validateSettings checks what a configuration file sets, everything but the wiring; each problem starts
// with prefix.
func (c *TokenReviewConfig) validateSettings(prefix string) error {
	var errs []error
	if slices.Contains(c.Audiences, "") {
		errs = append(errs, errors.New(prefix+"audiences must not be empty strings"))
	}
	if c.CacheSize < 0 {
		errs = append(errs, errors.New(prefix+"cacheSize must not be negative"))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New(prefix+"timeout must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *TokenReviewConfig) setDefaults() {
	if c.ClusterID == "" {
		c.ClusterID = authn.DefaultClusterID
	}
	if len(c.Audiences) == 0 {
		c.Audiences = []string{authn.DefaultAudience}
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = time.Minute
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = 5 * time.Second
	}
	if c.CacheSize == 0 {
		c.CacheSize = 4096
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// TokenReview authenticates Kubernetes service-account tokens by asking the API server (TokenReview API,
// authentication.k8s.io/v1). Unlike local JWT verification it sees revocation: a token whose service account
// or bound pod was deleted is refused. Answers are cached per token (by SHA-256; the token itself is never
// stored) and concurrent reviews of one token collapse into one.
type TokenReview struct {
	cfg    TokenReviewConfig
	cache  *reviewCache
	flight singleflight.Group

	reviews, hits atomic.Int64
}

// NewTokenReview returns a TokenReview authenticator.
func NewTokenReview(cfg TokenReviewConfig) (*TokenReview, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &TokenReview{cfg: cfg, cache: newReviewCache(cfg.CacheSize)}, nil
}

// TokenReviewStats counts a TokenReview authenticator's work.
type TokenReviewStats struct {
	// Reviews is the number of TokenReviews sent to the API server; CacheHits the answers served from cache.
	Reviews, CacheHits int64
	// Cached is the number of tokens in the cache.
	Cached int
}

// Stats returns counters since the authenticator was created.
func (t *TokenReview) Stats() TokenReviewStats {
	return TokenReviewStats{Reviews: t.reviews.Load(), CacheHits: t.hits.Load(), Cached: t.cache.len()}
}

// reviewResult is a definitive answer: a caller, or a refusal.
type reviewResult struct {
	caller *authn.Caller
	err    error // wraps authn.ErrUnauthenticated
}

// Authenticate implements authn.Authenticator.
func (t *TokenReview) Authenticate(ctx context.Context, req *authn.Request) (*authn.Caller, error) {
	if req.Token == "" {
		return nil, authn.ErrNoCredential
	}
	if len(req.Token) > authn.MaxTokenSize {
		return nil, fmt.Errorf("%w: token longer than %d bytes", authn.ErrUnauthenticated, authn.MaxTokenSize)
	}
	if req.ClusterID != "" && req.ClusterID != t.cfg.ClusterID {
		// The API server would vouch for the token, but not for the cluster the header claims.
		return nil, fmt.Errorf("%w: the clusterid header names a cluster whose tokens meshca does not review; "+
			"send this cluster's ID (kubernetes.clusterID) or configure the cluster's remote secret",
			authn.ErrUnauthenticated)
	}
	sum := sha256.Sum256([]byte(req.Token))
	key := string(sum[:])
	now := t.cfg.Clock()
	if r, ok := t.cache.get(key, now); ok {
		t.hits.Add(1)
		t.count(t.cfg.Metrics.cacheVec(), "hit")
		return t.answer(r)
	}
	t.count(t.cfg.Metrics.cacheVec(), "miss")
	ch := t.flight.DoChan(key, func() (any, error) {
		// The review outlives a caller that gives up, so the callers sharing it still get an answer.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.Timeout)
		defer cancel()
		start := time.Now()
		r, err := t.review(rctx, req.Token)
		if m := t.cfg.Metrics; m != nil {
			m.duration.WithLabelValues(t.cfg.ClusterID).Observe(time.Since(start).Seconds())
		}
		switch {
		case err != nil:
			t.count(t.cfg.Metrics.reviewVec(), "error")
		case r.err != nil:
			t.count(t.cfg.Metrics.reviewVec(), "refused")
		default:
			t.count(t.cfg.Metrics.reviewVec(), "authenticated")
		}
		if err != nil {
			return nil, err
		}
		t.store(key, req.Token, r)
		return r, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for TokenReview: %w", authn.ErrUnavailable, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return t.answer(res.Val.(*reviewResult))
	}
}

func (m *TokenReviewMetrics) cacheVec() *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	return m.cache
}

func (m *TokenReviewMetrics) reviewVec() *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	return m.reviews
}

func (t *TokenReview) count(v *prometheus.CounterVec, result string) {
	if v != nil {
		v.WithLabelValues(t.cfg.ClusterID, result).Inc()
	}
}

// answer returns a copy of a shared result, so callers cannot modify the cached one.
func (t *TokenReview) answer(r *reviewResult) (*authn.Caller, error) {
	if r.err != nil {
		return nil, r.err
	}
	c := *r.caller
	return &c, nil
}

// store caches r: a success for at most CacheTTL and the token's remaining life, a refusal for NegativeTTL.
func (t *TokenReview) store(key, token string, r *reviewResult) {
	now := t.cfg.Clock()
	ttl := t.cfg.CacheTTL
	if r.err != nil {
		ttl = t.cfg.NegativeTTL
	} else if exp, ok := unverifiedExpiry(token); ok {
		ttl = min(ttl, exp.Sub(now))
	}
	if ttl <= 0 {
		return
	}
	t.cache.put(key, r, now.Add(ttl))
}

func (t *TokenReview) review(ctx context.Context, token string) (*reviewResult, error) {
	t.reviews.Add(1)
	start := time.Now()
	tr, err := t.cfg.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: t.cfg.Audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("%w: TokenReview forbidden for meshca's own identity: grant it create on "+
				"tokenreviews.authentication.k8s.io (ClusterRole system:auth-delegator): %v", authn.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("%w: TokenReview: %v", authn.ErrUnavailable, err)
	}
	t.cfg.Logger.Debug("TokenReview", "authenticated", tr.Status.Authenticated, "user", tr.Status.User.Username,
		"elapsed", time.Since(start))
	refuse := func(format string, args ...any) (*reviewResult, error) {
		err := fmt.Errorf("%w: TokenReview: "+format, append([]any{authn.ErrUnauthenticated}, args...)...)
		return &reviewResult{err: err}, nil
	}
	st := tr.Status
	if !st.Authenticated {
		msg := st.Error
		if msg == "" {
			msg = "token not authenticated"
		}
		return refuse("the API server refused the token: %s", msg)
	}
	if !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(t.cfg.Audiences, a) }) {
		return refuse("the API server did not confirm audience %q (got %q); mint the token with that audience",
			t.cfg.Audiences, st.Audiences)
	}
	parts := strings.Split(st.User.Username, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" || parts[2] == "" || parts[3] == "" {
		return refuse("user %q is not a service account (system:serviceaccount:<namespace>:<name>)",
			st.User.Username)
	}
	c := &authn.Caller{Namespace: parts[2], ServiceAccount: parts[3], Method: "tokenreview", ClusterID: t.cfg.ClusterID,
		PodName: first(st.User.Extra[ExtraPodName]), PodUID: first(st.User.Extra[ExtraPodUID]),
		NodeName: first(st.User.Extra[ExtraNodeName])}
	if iss, exp, ok := unverifiedClaims(token); ok {
		c.Issuer, c.ExpiresAt = iss, exp
	}
	return &reviewResult{caller: c}, nil
}

func first(v authnv1.ExtraValue) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// unverifiedClaims decodes iss and exp from a JWT without verifying it. Use it only for values that the API
// server has already vouched for, or to shorten a cache lifetime.
func unverifiedClaims(token string) (iss string, exp time.Time, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", time.Time{}, false
	}
	var c struct {
		Iss string   `json:"iss"`
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp == nil {
		return c.Iss, time.Time{}, false
	}
	return c.Iss, time.Unix(int64(*c.Exp), 0), true
}

func unverifiedExpiry(token string) (time.Time, bool) {
	_, exp, ok := unverifiedClaims(token)
	return exp, ok
}

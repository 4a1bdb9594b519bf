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
	// CacheSize bounds the number of tokens whose success is cached; the least recently used is evicted.
	// Default 4096.
	CacheSize int `json:"cacheSize,omitempty"`
	// NegativeCacheSize bounds the refusals remembered, in a cache of their own: a flood of distinct junk
	// tokens evicts only other junk, never a good token. Default 1024.
	NegativeCacheSize int `json:"negativeCacheSize,omitempty"`
	// MaxConcurrentReviews bounds the TokenReviews in flight to the API server at once; more wait (within
	// Timeout) for a slot. Default 16.
	MaxConcurrentReviews int `json:"maxConcurrentReviews,omitempty"`
	// WithIssuers says how TokenReview combines with token issuers verified locally (authn.issuers), which
	// must be said when both are configured: "otherIssuers" (reviews only tokens of other issuers) or
	// "confirm" (also confirms the issuers' verified tokens). See authn.Combine.
	WithIssuers authn.Combine `json:"withIssuers,omitempty"`
	// MaxTokenLifetime refuses, before any review, tokens valid longer than this in all (exp - iat).
	// Default authn.DefaultMaxTokenLifetime; New sets it from authn.maxTokenLifetime.
	MaxTokenLifetime time.Duration `json:"-"`
	// Timeout bounds one review. Default 5s.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Metrics, when set, counts reviews and cache hits; share one between the clusters of a MultiCluster.
	Metrics *TokenReviewMetrics `json:"-"`
	// Clock returns the current time; default time.Now.
	Clock  func() time.Time `json:"-"`
	Logger *slog.Logger     `json:"-"`
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
	if c.CacheSize < 0 || c.NegativeCacheSize < 0 {
		errs = append(errs, errors.New(prefix+"cacheSize and negativeCacheSize must not be negative"))
	}
	if err := c.WithIssuers.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%swithIssuers: %w", prefix, err))
	}
	if c.MaxConcurrentReviews < 0 {
		errs = append(errs, errors.New(prefix+"maxConcurrentReviews must not be negative"))
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
	if c.NegativeCacheSize == 0 {
		c.NegativeCacheSize = 1024
	}
	if c.MaxConcurrentReviews == 0 {
		c.MaxConcurrentReviews = 16
	}
	if c.MaxTokenLifetime <= 0 {
		c.MaxTokenLifetime = authn.DefaultMaxTokenLifetime
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
// stored), successes and refusals in separate bounded caches; concurrent reviews of one token collapse into
// one; at most MaxConcurrentReviews are in flight; and what is not structurally a live service-account JWT
// is refused without asking the API server.
type TokenReview struct {
	cfg      TokenReviewConfig
	cache    *reviewCache // successes
	negative *reviewCache // refusals
	slots    chan struct{}
	flight   singleflight.Group

	reviews, hits atomic.Int64
}

// NewTokenReview returns a TokenReview authenticator.
func NewTokenReview(cfg TokenReviewConfig) (*TokenReview, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &TokenReview{cfg: cfg, cache: newReviewCache(cfg.CacheSize), negative: newReviewCache(cfg.NegativeCacheSize),
		slots: make(chan struct{}, cfg.MaxConcurrentReviews)}, nil
}

// TokenReviewStats counts a TokenReview authenticator's work.
type TokenReviewStats struct {
	// Reviews is the number of TokenReviews sent to the API server; CacheHits the answers served from cache.
	Reviews, CacheHits int64
	// Cached is the number of tokens whose success is cached, Refusals the number of refusals remembered.
	Cached, Refusals int
}

// Stats returns counters since the authenticator was created.
func (t *TokenReview) Stats() TokenReviewStats {
	return TokenReviewStats{Reviews: t.reviews.Load(), CacheHits: t.hits.Load(), Cached: t.cache.len(),
		Refusals: t.negative.len()}
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
	if r, ok := t.lookup(key, now); ok {
		t.hits.Add(1)
		t.count(t.cfg.Metrics.cacheVec(), "hit")
		return t.answer(r)
	}
	t.count(t.cfg.Metrics.cacheVec(), "miss")
	if err := precheck(req.Token, now, t.cfg.MaxTokenLifetime); err != nil {
		t.count(t.cfg.Metrics.reviewVec(), "malformed")
		return nil, err
	}
	ch := t.flight.DoChan(key, func() (any, error) {
		// A caller that missed the cache just before another's review stored its answer starts a flight of
		// its own after that one ended: the answer is in the cache by now.
		if r, ok := t.lookup(key, t.cfg.Clock()); ok {
			return r, nil
		}
		// The review outlives a caller that gives up, so the callers sharing it still get an answer.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.Timeout)
		defer cancel()
		select {
		case t.slots <- struct{}{}:
			defer func() { <-t.slots }()
		case <-rctx.Done():
			t.count(t.cfg.Metrics.reviewVec(), "error")
			return nil, fmt.Errorf("%w: %d TokenReviews in flight (kubernetes.tokenReview.maxConcurrentReviews) "+
				"for %s: %w", authn.ErrUnavailable, cap(t.slots), t.cfg.Timeout, rctx.Err())
		}
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
	if r.err != nil {
		t.negative.put(key, r, now.Add(ttl))
		return
	}
	t.cache.put(key, r, now.Add(ttl))
}

// lookup returns a cached success or refusal.
func (t *TokenReview) lookup(key string, now time.Time) (*reviewResult, bool) {
	if r, ok := t.cache.get(key, now); ok {
		return r, true
	}
	return t.negative.get(key, now)
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

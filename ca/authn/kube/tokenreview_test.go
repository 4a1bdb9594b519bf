package kube_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/catest"
)

func newTokenReview(t *testing.T, cfg *rest.Config, c *clock, mod func(*kube.TokenReviewConfig)) *kube.TokenReview {
	t.Helper()
	trc := kube.TokenReviewConfig{Client: newClient(t, cfg), Clock: c.now, Logger: catest.DiscardLogger()}
	if mod != nil {
		mod(&trc)
	}
	tr, err := kube.NewTokenReview(trc)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestTokenReviewAcceptsBoundTokenAndCachesIt(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	w := newWorkload(t, k, ns, "httpbin", "node-"+ns)
	cfg, reviews := counting(meshcaConfig(t, k), isTokenReview)
	var c clock
	reg := prometheus.NewRegistry()
	metrics, err := kube.NewTokenReviewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTokenReview(t, cfg, &c, func(trc *kube.TokenReviewConfig) { trc.Metrics = metrics })
	tok := mintToken(t, k.Client, w, authn.DefaultAudience)
	ctx := context.Background()

	start := time.Now()
	caller, err := tr.Authenticate(ctx, &authn.Request{Token: tok, ClusterID: authn.DefaultClusterID})
	first := time.Since(start)
	if err != nil {
		t.Fatalf("real bound token refused: %v", err)
	}
	want := authn.Caller{Namespace: ns, ServiceAccount: "httpbin", PodName: w.pod, PodUID: string(w.podUID),
		NodeName: w.node, Method: "tokenreview", Issuer: catest.KubeIssuer, ClusterID: authn.DefaultClusterID}
	got := *caller
	got.ExpiresAt = time.Time{}
	if got != want {
		t.Fatalf("caller = %+v, want %+v", got, want)
	}
	if d := time.Until(caller.ExpiresAt); d < 9*time.Minute || d > 10*time.Minute {
		t.Errorf("caller expires in %s, want the token's ~10m", d)
	}

	const repeats = 200
	start = time.Now()
	for range repeats {
		if _, err := tr.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
			t.Fatalf("repeat refused: %v", err)
		}
	}
	hit := time.Since(start) / repeats
	if n := reviews.Load(); n != 1 {
		t.Fatalf("API server received %d TokenReviews for 1+%d identical requests, want 1 (cache)", n, repeats)
	}
	s := tr.Stats()
	t.Logf("first review %s, cached answer %s; hit rate %d/%d", first, hit, s.CacheHits, s.CacheHits+s.Reviews)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meshca_tokenreview_cache_requests_total `+
		`Token authentications answered from the TokenReview cache (hit) or not (miss).
# TYPE meshca_tokenreview_cache_requests_total counter
meshca_tokenreview_cache_requests_total{cluster="Kubernetes",result="hit"} 200
meshca_tokenreview_cache_requests_total{cluster="Kubernetes",result="miss"} 1
# HELP meshca_tokenreview_requests_total `+
		`TokenReviews sent to the API server, by outcome (malformed: refused before any review).
# TYPE meshca_tokenreview_requests_total counter
meshca_tokenreview_requests_total{cluster="Kubernetes",result="authenticated"} 1
`), "meshca_tokenreview_cache_requests_total", "meshca_tokenreview_requests_total"); err != nil {
		t.Error(err)
	}

	// Review latency over distinct tokens (each a cache miss).
	var lat []time.Duration
	for range 30 {
		tok := mintToken(t, k.Client, w, authn.DefaultAudience)
		start := time.Now()
		if _, err := tr.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("TokenReview round trip over 30 distinct tokens: median %s, max %s", lat[len(lat)/2], lat[len(lat)-1])
	reviews.Store(1)

	// Concurrent first requests for a new token collapse into one review.
	tok2 := mintToken(t, k.Client, w, authn.DefaultAudience)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			_, err := tr.Authenticate(ctx, &authn.Request{Token: tok2})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent request refused: %v", err)
		}
	}
	if n := reviews.Load(); n != 2 {
		t.Fatalf("API server received %d TokenReviews after 50 concurrent requests for a new token, want 2 in all", n)
	}

	// The cache never outlives the bound: past CacheTTL (1m) the API server is asked again.
	c.advance(61 * time.Second)
	if _, err := tr.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
		t.Fatal(err)
	}
	if n := reviews.Load(); n != 3 {
		t.Fatalf("API server received %d TokenReviews, want 3: a cached answer was served past the 1m bound", n)
	}
}

func TestTokenReviewCacheNeverOutlivesToken(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	w := newWorkload(t, k, ns, "app", "node-"+ns)
	cfg, reviews := counting(meshcaConfig(t, k), isTokenReview)
	var c clock
	tr := newTokenReview(t, cfg, &c, func(trc *kube.TokenReviewConfig) { trc.CacheTTL = time.Hour })
	tok := mintToken(t, k.Client, w, authn.DefaultAudience) // expires in 10m
	ctx := context.Background()
	if _, err := tr.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
		t.Fatal(err)
	}
	c.advance(9 * time.Minute)
	if _, err := tr.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
		t.Fatal(err)
	}
	if n := reviews.Load(); n != 1 {
		t.Fatalf("%d TokenReviews, want 1: the answer should be cached within the token's life", n)
	}
	c.advance(61 * time.Second) // past exp on meshca's clock; the API server's clock says otherwise
	_, _ = tr.Authenticate(ctx, &authn.Request{Token: tok})
	if n := reviews.Load(); n != 2 {
		t.Fatalf("%d TokenReviews, want 2: a cached answer was served after the token's exp", n)
	}
}

func TestTokenReviewRefuses(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	node := "node-" + ns
	ctx := context.Background()
	cfg, reviews := counting(meshcaConfig(t, k), isTokenReview)
	var c clock
	tr := newTokenReview(t, cfg, &c, nil)

	good := newWorkload(t, k, ns, "good", node)
	deletedSA := newWorkload(t, k, ns, "deleted-sa", node)
	deletedSATok := mintToken(t, k.Client, deletedSA, authn.DefaultAudience)
	if err := k.Client.CoreV1().ServiceAccounts(ns).Delete(ctx, "deleted-sa", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deletedPod := newWorkload(t, k, ns, "deleted-pod", node)
	deletedPodTok := mintToken(t, k.Client, deletedPod, authn.DefaultAudience)
	err := k.Client.CoreV1().Pods(ns).Delete(ctx, deletedPod.pod, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tests := []struct {
		name    string
		token   string
		reviews int64  // TokenReviews for two attempts: 1 (the refusal is cached), 0 (refused before any)
		reason  string // what the message must carry of the API server's own reason
	}{
		{"a token for a deleted service account", deletedSATok, 1, `serviceaccounts "deleted-sa" not found`},
		{"a token bound to a deleted pod", deletedPodTok, 1, ""},
		{"a token minted for another audience", mintToken(t, k.Client, good, "other-audience"), 1, ""},
		{"a token minted for the API server's own audience", mintToken(t, k.Client, good, catest.KubeIssuer), 1, ""},
		{"an expired token signed with the cluster's key",
			forgeToken(t, k, good, authn.DefaultAudience, now.Add(-20*time.Minute), now.Add(-10*time.Minute)), 0, ""},
		{"a token not yet valid",
			forgeToken(t, k, good, authn.DefaultAudience, now.Add(10*time.Minute), now.Add(20*time.Minute)), 1, ""},
		{"the static admin token (not a service account)", k.Config.BearerToken, 0, ""},
		{"garbage", "not-a-token", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := reviews.Load()
			caller, err := tr.Authenticate(ctx, &authn.Request{Token: tt.token})
			if !errors.Is(err, authn.ErrUnauthenticated) {
				t.Fatalf("Authenticate = %+v, %v; want ErrUnauthenticated", caller, err)
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("the refusal does not pass on the API server's reason %q", tt.reason)
			}
			// A refusal is remembered briefly (NegativeTTL) and never as a success.
			if _, err := tr.Authenticate(ctx,
				&authn.Request{Token: tt.token}); !errors.Is(err, authn.ErrUnauthenticated) {
				t.Fatalf("second attempt: %v, want ErrUnauthenticated", err)
			}
			if n := reviews.Load() - before; n != tt.reviews {
				t.Errorf("%d TokenReviews for two attempts within NegativeTTL, want %d", n, tt.reviews)
			}
		})
	}
	// After NegativeTTL a refused token is reviewed again (and still refused).
	c.advance(6 * time.Second)
	before := reviews.Load()
	if _, err := tr.Authenticate(ctx, &authn.Request{Token: deletedSATok}); !errors.Is(err, authn.ErrUnauthenticated) {
		t.Fatalf("after NegativeTTL: %v", err)
	}
	if reviews.Load() != before+1 {
		t.Fatal("a refusal was remembered past NegativeTTL")
	}
}

func TestTokenReviewServiceAccountDeletedAfterCaching(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	w := newWorkload(t, k, ns, "short-lived", "node-"+ns)
	var c clock
	tr := newTokenReview(
		t,
		meshcaConfig(t, k),
		&c,
		func(trc *kube.TokenReviewConfig) { trc.CacheTTL = 30 * time.Second },
	)
	tok := mintToken(t, k.Client, w, authn.DefaultAudience)
	ctx := context.Background()
	if _, err := tr.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
		t.Fatal(err)
	}
	if err := k.Client.CoreV1().ServiceAccounts(ns).Delete(ctx, w.sa, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, k, tok)
	// Within the bound the cached answer stands: that is the price of caching, bounded by CacheTTL.
	if _, err := tr.Authenticate(ctx, &authn.Request{Token: tok}); err != nil {
		t.Fatalf("within CacheTTL: %v", err)
	}
	c.advance(31 * time.Second)
	if _, err := tr.Authenticate(ctx, &authn.Request{Token: tok}); !errors.Is(err, authn.ErrUnauthenticated) {
		t.Fatalf("past CacheTTL, a token of a deleted service account: %v, want ErrUnauthenticated", err)
	}
}

func TestTokenReviewUnavailable(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	w := newWorkload(t, k, ns, "app", "node-"+ns)
	tok := mintToken(t, k.Client, w, authn.DefaultAudience)
	down := rest.CopyConfig(k.Config)
	down.Host = "https://127.0.0.1:" + itoa(catest.FreePort(t))
	cfg, reviews := counting(down, isTokenReview)
	var c clock
	tr := newTokenReview(t, cfg, &c, func(trc *kube.TokenReviewConfig) { trc.Timeout = 2 * time.Second })
	var downErr error
	for range 2 {
		_, downErr = tr.Authenticate(context.Background(), &authn.Request{Token: tok})
		if !errors.Is(downErr, authn.ErrUnavailable) {
			t.Fatalf("API server down: %v, want ErrUnavailable", downErr)
		}
	}
	if n := reviews.Load(); n != 2 {
		t.Fatalf("%d review attempts for 2 requests, want 2: an error must not be cached", n)
	}

	// Without RBAC for TokenReview: unavailable, with a message saying which permission is missing.
	nobody := rest.AnonymousClientConfig(k.Config)
	_, err := newClient(t, nobody).AuthenticationV1().TokenReviews().Create(context.Background(),
		&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tok}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("precondition: the anonymous client's own TokenReview: %v, want 403 Forbidden", err)
	}
	tr = newTokenReview(t, nobody, &c, nil)
	_, err = tr.Authenticate(context.Background(), &authn.Request{Token: tok})
	if !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("anonymous client: %v, want ErrUnavailable", err)
	}
	// The API server's own 403 names the resource too; the hint is what meshca adds, and only when forbidden.
	const hint = "create on tokenreviews.authentication.k8s.io"
	if !strings.Contains(err.Error(), hint) {
		t.Errorf("anonymous client: %v, want a message naming the missing permission (%q)", err, hint)
	}
	if strings.Contains(downErr.Error(), hint) {
		t.Errorf("API server down: %v, must not blame a missing permission", downErr)
	}
}

func TestTokenReviewConfigValidate(t *testing.T) {
	client := newClient(t, &rest.Config{Host: "https://127.0.0.1:1"})
	tests := []struct {
		name    string
		mod     func(*kube.TokenReviewConfig)
		mention string // what the error must name; empty: valid
	}{
		{"a config with only a client is valid", func(*kube.TokenReviewConfig) {}, ""},
		{"a config without a client is refused", func(c *kube.TokenReviewConfig) { c.Client = nil }, "client"},
		{"an empty audience is refused", func(c *kube.TokenReviewConfig) { c.Audiences = []string{"a", ""} },
			"audiences"},
		{"a negative cache size is refused", func(c *kube.TokenReviewConfig) { c.CacheSize = -1 }, "cacheSize"},
		{"a negative negative-cache size is refused", func(c *kube.TokenReviewConfig) { c.NegativeCacheSize = -1 },
			"negativeCacheSize"},
		{"a negative concurrency bound is refused", func(c *kube.TokenReviewConfig) { c.MaxConcurrentReviews = -1 },
			"maxConcurrentReviews"},
		{"a negative timeout is refused", func(c *kube.TokenReviewConfig) { c.Timeout = -1 }, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := kube.TokenReviewConfig{Client: client, Logger: catest.DiscardLogger()}
			tt.mod(&cfg)
			err := cfg.Validate()
			if (err == nil) != (tt.mention == "") {
				t.Fatalf("Validate: %v, want an error naming %q", err, tt.mention)
			}
			if err != nil && !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("Validate: %q does not name %s", err, tt.mention)
			}
			if _, nerr := kube.NewTokenReview(cfg); (nerr == nil) != (err == nil) {
				t.Errorf("NewTokenReview: %v, but Validate: %v", nerr, err)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// waitRefused waits until k's API server itself refuses tok: it caches successful token authentications
// for 10s, and its service-account informer lags a deletion.
func waitRefused(t *testing.T, k *catest.Kube, tok string) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		tr, err := k.Client.AuthenticationV1().TokenReviews().Create(context.Background(), &authnv1.TokenReview{
			Spec: authnv1.TokenReviewSpec{
				Token:     tok,
				Audiences: []string{authn.DefaultAudience},
			}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !tr.Status.Authenticated {
			t.Logf("the API server refuses the token %s after its service account was deleted",
				time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the API server still accepts the token 30s after its service account was deleted")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package kube_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/catest"
)

// junkToken is structurally a service-account token of the test cluster's issuer, signed with a key the
// cluster never had: the API server refuses it, but only the API server can tell.
func junkToken(t *testing.T, key *rsa.PrivateKey, ns, sa string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: catest.KubeIssuer,
		Subject: "system:serviceaccount:" + ns + ":" + sa, Audience: jwt.Audience{authn.DefaultAudience},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokenReviewJunkTokensDoNotEvictGoodOnes is hole 5 of issue 15: refusals are cached apart from
// successes, so a flood of distinct junk tokens cannot push the good tokens out of the cache and turn every
// agent's renewal into a TokenReview.
func TestTokenReviewJunkTokensDoNotEvictGoodOnes(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	w := newWorkload(t, k, ns, "good", "node-"+ns)
	cfg, reviews := counting(meshcaConfig(t, k), isTokenReview)
	var c clock
	tr := newTokenReview(t, cfg, &c, func(trc *kube.TokenReviewConfig) { trc.CacheSize = 8 })
	ctx := context.Background()
	good := mintToken(t, k.Client, w, authn.DefaultAudience)
	if _, err := tr.Authenticate(ctx, &authn.Request{Token: good}); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		_, err := tr.Authenticate(ctx, &authn.Request{Token: junkToken(t, key, ns, "junk"+itoa(i))})
		if !errors.Is(err, authn.ErrUnauthenticated) {
			t.Fatalf("junk token %d: %v, want ErrUnauthenticated", i, err)
		}
	}
	before := reviews.Load()
	if _, err := tr.Authenticate(ctx, &authn.Request{Token: good}); err != nil {
		t.Fatal(err)
	}
	if n := reviews.Load() - before; n != 0 {
		t.Fatalf("the good token was reviewed again (%d TokenReviews) after 40 junk tokens: evicted by refusals", n)
	}
}

// TestTokenReviewRefusesNonTokensWithoutAPICall: what is not even structurally a live service-account JWT is
// refused before any TokenReview, so an unauthenticated caller cannot turn junk into API server load.
func TestTokenReviewRefusesNonTokensWithoutAPICall(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	w := newWorkload(t, k, ns, "app", "node-"+ns)
	cfg, reviews := counting(meshcaConfig(t, k), isTokenReview)
	var c clock
	tr := newTokenReview(t, cfg, &c, nil)
	now := time.Now()
	tok := mintToken(t, k.Client, w, authn.DefaultAudience)
	parts := strings.Split(tok, ".")
	tests := []struct{ name, token string }{
		{"a string that is not a JWT", "not-a-token"},
		{"three dots of nothing", ".."},
		{"a JWT with alg none", "eyJhbGciOiJub25lIn0." + parts[1] + "."},
		{"an HMAC JWT", "eyJhbGciOiJIUzI1NiJ9." + parts[1] + "." + parts[2]},
		{"a payload that is not JSON", parts[0] + ".bm90IGpzb24." + parts[2]},
		{"a token that expired long ago",
			forgeToken(t, k, w, authn.DefaultAudience, now.Add(-time.Hour), now.Add(-30*time.Minute))},
		{"a token living longer than the maximum token lifetime",
			forgeToken(t, k, w, authn.DefaultAudience, now, now.Add(authn.DefaultMaxTokenLifetime+time.Hour))},
		{"a token that is not a service account's", k.Config.BearerToken},
		{"a token longer than the size bound", tok + strings.Repeat("A", authn.MaxTokenSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := reviews.Load()
			if _, err := tr.Authenticate(context.Background(),
				&authn.Request{Token: tt.token}); !errors.Is(err, authn.ErrUnauthenticated) {
				t.Fatalf("Authenticate: %v, want ErrUnauthenticated", err)
			} else {
				t.Logf("refused: %v", err)
			}
			if n := reviews.Load() - before; n != 0 {
				t.Fatalf("%d TokenReviews sent for a string that is not a live service-account token, want 0", n)
			}
		})
	}
}

// TestTokenReviewCapsConcurrentReviews: however many distinct tokens arrive at once, at most
// MaxConcurrentReviews TokenReviews are in flight to the API server.
func TestTokenReviewCapsConcurrentReviews(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	w := newWorkload(t, k, ns, "app", "node-"+ns)
	var inFlight, peak atomic.Int64
	cfg := rest.CopyConfig(meshcaConfig(t, k))
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if !isTokenReview(r) {
				return rt.RoundTrip(r)
			}
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(20 * time.Millisecond) // a slow API server, so reviews overlap
			return rt.RoundTrip(r)
		})
	})
	var c clock
	const limit = 4
	tr := newTokenReview(t, cfg, &c, func(trc *kube.TokenReviewConfig) { trc.MaxConcurrentReviews = limit })
	tokens := make([]string, 32)
	for i := range tokens {
		tokens[i] = mintToken(t, k.Client, w, authn.DefaultAudience)
	}
	var wg sync.WaitGroup
	for _, tok := range tokens {
		wg.Go(func() {
			if _, err := tr.Authenticate(context.Background(), &authn.Request{Token: tok}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > limit || p < 2 {
		t.Fatalf("%d TokenReviews in flight at once for %d distinct tokens, want between 2 and %d", p, len(tokens),
			limit)
	}
	t.Logf("peak %d TokenReviews in flight for %d distinct tokens", peak.Load(), len(tokens))
}

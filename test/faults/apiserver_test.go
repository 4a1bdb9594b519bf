package faults_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/catest"
)

// boundToken creates service account sa with a pod and returns a token bound to that pod.
func boundToken(t *testing.T, c kubernetes.Interface, sa string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CoreV1().ServiceAccounts("default").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: sa},
		Spec: corev1.PodSpec{ServiceAccountName: sa, NodeName: "node-1",
			Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exp := int64(600)
	tr, err := c.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{authn.DefaultAudience}, ExpirationSeconds: &exp,
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// outcome is one authentication of a load.
type outcome struct {
	at  time.Time
	err error
}

// TestAPIServerDownUnderLoad: with the API server gone while tokens are being checked, tokens verified with
// its keys (JWKS) keep working on the cached keys, a cached TokenReview keeps working until its cacheTTL
// ends and is then unavailable (not refused), and a token never reviewed is unavailable at once.
func TestAPIServerDownUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	k := catest.StartKube(t)
	jwtTok, reviewTok, neverSeen := boundToken(t, k.Client, "jwks"), boundToken(t, k.Client, "reviewed"),
		boundToken(t, k.Client, "late")
	keys, err := kube.NewAPIServerKeys(k.Config, catest.KubeIssuer, authn.RemoteKeysConfig{
		Refresh: 300 * time.Millisecond, MinRefresh: 100 * time.Millisecond, Timeout: time.Second,
		Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: catest.KubeIssuer, Keys: keys}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const cacheTTL = 3 * time.Second
	tr, err := kube.NewTokenReview(kube.TokenReviewConfig{Client: k.Client, CacheTTL: cacheTTL,
		Timeout: time.Second, Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := j.Authenticate(ctx, &authn.Request{Token: jwtTok}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Authenticate(ctx, &authn.Request{Token: reviewTok}); err != nil {
		t.Fatal(err)
	}
	reviewed := time.Now()

	var mu sync.Mutex
	var jwtOut, reviewOut []outcome
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, jerr := j.Authenticate(ctx, &authn.Request{Token: jwtTok})
				at := time.Now()
				_, rerr := tr.Authenticate(ctx, &authn.Request{Token: reviewTok})
				mu.Lock()
				jwtOut = append(jwtOut, outcome{at, jerr})
				reviewOut = append(reviewOut, outcome{at, rerr})
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	k.Stop()
	stopped := time.Now()
	start := time.Now()
	_, err = tr.Authenticate(ctx, &authn.Request{Token: neverSeen})
	if !errors.Is(err, authn.ErrUnavailable) || time.Since(start) > 2*time.Second {
		t.Errorf("a token never reviewed, API server down: %v after %s, want ErrUnavailable within the timeout", err,
			time.Since(start))
	}
	time.Sleep(cacheTTL + time.Second)
	close(stop)
	wg.Wait()

	var jwtAfter, cachedOK, expiredUnavailable int
	for i, o := range jwtOut {
		if o.err != nil {
			t.Fatalf("JWKS-verified token at +%s (API server stopped at +%s): %v", o.at.Sub(reviewed),
				stopped.Sub(reviewed), o.err)
		}
		if o.at.After(stopped) {
			jwtAfter++
		}
		r := reviewOut[i]
		switch {
		case r.at.Before(reviewed.Add(cacheTTL - 200*time.Millisecond)):
			if r.err != nil {
				t.Fatalf("cached TokenReview at +%s, within its %s: %v", r.at.Sub(reviewed), cacheTTL, r.err)
			}
			cachedOK++
		case r.at.After(reviewed.Add(cacheTTL + 200*time.Millisecond)):
			if !errors.Is(r.err, authn.ErrUnavailable) {
				t.Fatalf("TokenReview at +%s, past its cache and with the API server down: %v, want unavailable",
					r.at.Sub(reviewed), r.err)
			}
			expiredUnavailable++
		}
	}
	if jwtAfter == 0 || expiredUnavailable == 0 {
		t.Fatalf("load too thin: %d JWKS checks after the stop, %d reviews past the cache", jwtAfter,
			expiredUnavailable)
	}
	t.Logf("API server down for %s: %d JWKS-verified authentications all served from cached keys; %d cached "+
		"reviews served, %d after cacheTTL unavailable", time.Since(stopped).Round(time.Millisecond), jwtAfter,
		cachedOK, expiredUnavailable)
}

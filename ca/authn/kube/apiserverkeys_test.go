package kube_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/catest"
)

func newJWT(t *testing.T, keys authn.KeySet, c *clock) *authn.JWT {
	t.Helper()
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: catest.KubeIssuer, Keys: keys}}, authn.JWTOptions{Clock: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestAPIServerKeysVerifyRealTokens(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	w := newWorkload(t, k, ns, "httpbin", "node-"+ns)
	keys, err := kube.NewAPIServerKeys(meshcaConfig(t, k), catest.KubeIssuer,
		authn.RemoteKeysConfig{Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var c clock
	j := newJWT(t, keys, &c)
	ctx := context.Background()
	tok := mintToken(t, k.Client, w, authn.DefaultAudience)
	caller, err := j.Authenticate(ctx, &authn.Request{Token: tok})
	if err != nil {
		t.Fatalf("TokenRequest-minted token refused by JWKS from the API server: %v", err)
	}
	if caller.Namespace != ns || caller.ServiceAccount != "httpbin" || caller.PodName != w.pod ||
		caller.PodUID != string(w.podUID) || caller.NodeName != w.node || caller.Issuer != catest.KubeIssuer {
		t.Fatalf("caller = %+v, want %s/httpbin on pod %s node %s", caller, ns, w.pod, w.node)
	}

	now := time.Now()
	tests := []struct{ name, token string }{
		{"a token minted for another audience", mintToken(t, k.Client, w, "other-audience")},
		{"an expired token signed with the cluster's key",
			forgeToken(t, k, w, authn.DefaultAudience, now.Add(-20*time.Minute), now.Add(-10*time.Minute))},
		{"a token with a tampered payload", tamper(tok)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := j.Authenticate(ctx,
				&authn.Request{Token: tt.token}); !errors.Is(err, authn.ErrUnauthenticated) {
				t.Fatalf("Authenticate: %v, want ErrUnauthenticated", err)
			} else {
				t.Logf("refused: %v", err)
			}
		})
	}
	t.Run("a real token once its exp has passed", func(t *testing.T) {
		c.advance(11 * time.Minute) // 600 s token + 30 s leeway
		defer c.advance(-11 * time.Minute)
		if _, err := j.Authenticate(ctx, &authn.Request{Token: tok}); !errors.Is(err, authn.ErrUnauthenticated) {
			t.Fatalf("Authenticate: %v, want ErrUnauthenticated", err)
		}
	})
	t.Run("a discovery document naming another issuer", func(t *testing.T) {
		wrong, err := kube.NewAPIServerKeys(meshcaConfig(t, k), "https://issuer.invalid",
			authn.RemoteKeysConfig{Logger: catest.DiscardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = wrong.Keys(ctx, "")
		if !errors.Is(err, authn.ErrUnavailable) || !strings.Contains(err.Error(), catest.KubeIssuer) {
			t.Fatalf("Keys: %v, want ErrUnavailable naming the document's issuer", err)
		}
	})
}

// switchTransport sends every request to the API server currently selected, with that server's TLS and
// credentials, as a load balancer in front of API servers would.
type switchTransport struct {
	cur       atomic.Int32
	hosts     []string
	rts       []http.RoundTripper
	jwksFetch atomic.Int64
}

func (s *switchTransport) add(t *testing.T, k *catest.Kube) {
	rt, err := rest.TransportFor(meshcaConfig(t, k))
	if err != nil {
		t.Fatal(err)
	}
	s.hosts = append(s.hosts, strings.TrimPrefix(k.URL, "https://"))
	s.rts = append(s.rts, rt)
}

func (s *switchTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	i := s.cur.Load()
	r = r.Clone(r.Context())
	r.URL.Host, r.Host = s.hosts[i], ""
	if r.URL.Path == "/openid/v1/jwks" {
		s.jwksFetch.Add(1)
	}
	return s.rts[i].RoundTrip(r)
}

// TestAPIServerKeysRotation rotates the issuer's signing key the way a cluster does it (API servers restarted
// with a new --service-account-signing-key-file): the API server behind the discovery URL switches from
// cluster A to cluster B, which has the same issuer and a different key. A token with the new key ID
// triggers a refresh; refreshes for unknown key IDs are rate-limited by MinRefresh.
func TestAPIServerKeysRotation(t *testing.T) {
	a, b := catest.SharedKube(t), catest.StartKube(t)
	wa := newWorkload(t, a, a.Namespace(t), "app", "node-a")
	wb := newWorkload(t, b, b.Namespace(t), "app", "node-b")
	tokA, tokB := mintToken(t, a.Client, wa, authn.DefaultAudience), mintToken(t, b.Client, wb, authn.DefaultAudience)
	sw := &switchTransport{}
	sw.add(t, a)
	sw.add(t, b)
	keys, err := authn.NewRemoteKeys(authn.RemoteKeysConfig{Issuer: catest.KubeIssuer, DiscoveryURL: a.URL,
		HTTPClient: &http.Client{Transport: sw}, MinRefresh: time.Second, Refresh: time.Hour,
		Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var c clock
	j := newJWT(t, keys, &c)
	ctx := context.Background()
	for range 10 {
		if _, err := j.Authenticate(ctx, &authn.Request{Token: tokA}); err != nil {
			t.Fatalf("token of the current key: %v", err)
		}
	}
	if n := sw.jwksFetch.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for 10 verifications, want 1", n)
	}

	sw.cur.Store(1)                     // the API servers now sign with B's key
	time.Sleep(1100 * time.Millisecond) // past MinRefresh since the first fetch
	if _, err := j.Authenticate(ctx, &authn.Request{Token: tokB}); err != nil {
		t.Fatalf("token of the rotated-in key: %v (an unknown kid must trigger a refresh)", err)
	}
	if n := sw.jwksFetch.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2: the unknown kid should have caused exactly one refresh", n)
	}
	// The old key is gone from the JWKS: its tokens no longer verify, and hammering with unknown key IDs
	// causes no more than one refresh per MinRefresh.
	for range 20 {
		if _, err := j.Authenticate(ctx, &authn.Request{Token: tokA}); !errors.Is(err, authn.ErrUnauthenticated) {
			t.Fatalf("token of the retired key: %v, want ErrUnauthenticated", err)
		}
	}
	if n := sw.jwksFetch.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after 20 unknown-kid tokens within MinRefresh, want 2", n)
	}
}

// tamper changes one character of the payload so the signature no longer matches.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	if p[10] == 'A' {
		p[10] = 'B'
	} else {
		p[10] = 'A'
	}
	parts[1] = string(p)
	return strings.Join(parts, ".")
}

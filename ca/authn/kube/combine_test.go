package kube_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// clusterJWKS writes the test cluster's service-account keys, as the API server publishes them, to a file.
func clusterJWKS(t *testing.T, k *catest.Kube) string {
	t.Helper()
	b, err := k.Client.CoreV1().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newCombined builds the chain authn.New builds for issuers plus a TokenReview of k's API server.
func newCombined(t *testing.T, k *catest.Kube, issuers []authn.TokenIssuerConfig,
	combine authn.Combine) (authn.Chain, error) {
	t.Helper()
	var c clock
	off := false
	return authn.New(authn.Config{TokenIssuers: issuers, ClientCert: &off},
		authn.Deps{Then: []authn.Authenticator{newTokenReview(t, meshcaConfig(t, k), &c, nil)}, Combine: combine,
			Logger: catest.DiscardLogger()})
}

// TestTokenReviewIsNotShadowedByJWKS is hole 8 of issue 15: with both token issuers verified locally and a
// TokenReview configured, how they combine is said, and each way does what it says. Before, the local
// verification answered every token: a token of another issuer never reached the TokenReview, and a token of
// a deleted service account was accepted.
func TestTokenReviewIsNotShadowedByJWKS(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	ctx := context.Background()
	w := newWorkload(t, k, ns, "app", "node-"+ns)
	gone := newWorkload(t, k, ns, "gone", "node-"+ns)
	goneTok := mintToken(t, k.Client, gone, authn.DefaultAudience)
	if err := k.Client.CoreV1().ServiceAccounts(ns).Delete(ctx, gone.sa, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, k, goneTok)
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	devJWKS := filepath.Join(t.TempDir(), "dev.json")
	devKeys, _ := dev.Keys().Keys(ctx, "")
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: devKeys})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(devJWKS, b, 0o600); err != nil {
		t.Fatal(err)
	}
	devTok, err := dev.Mint(devtoken.Claims{Namespace: ns, ServiceAccount: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	appTok := mintToken(t, k.Client, w, authn.DefaultAudience)

	t.Run("unsaid, the combination is refused", func(t *testing.T) {
		_, err := newCombined(t, k, []authn.TokenIssuerConfig{{Issuer: dev.Issuer, JWKSFile: devJWKS}}, "")
		if err == nil {
			t.Fatal("authn.New accepted token issuers and a TokenReview without saying how they combine")
		}
	})
	t.Run("otherIssuers: another issuer's token is reviewed", func(t *testing.T) {
		chain, err := newCombined(t, k, []authn.TokenIssuerConfig{{Issuer: dev.Issuer, JWKSFile: devJWKS}},
			authn.CombineOtherIssuers)
		if err != nil {
			t.Fatal(err)
		}
		c, err := chain.Authenticate(ctx, &authn.Request{Token: appTok})
		if err != nil || c.Method != "tokenreview" {
			t.Fatalf("the cluster's token: %+v, %v; want it reviewed by the API server", c, err)
		}
		c, err = chain.Authenticate(ctx, &authn.Request{Token: devTok})
		if err != nil || c.Method != "jwt" {
			t.Fatalf("the configured issuer's token: %+v, %v; want it verified locally", c, err)
		}
	})
	t.Run("confirm: a verified token of a deleted service account is refused", func(t *testing.T) {
		chain, err := newCombined(t, k, []authn.TokenIssuerConfig{{Issuer: catest.KubeIssuer,
			JWKSFile: clusterJWKS(t, k)}}, authn.CombineConfirm)
		if err != nil {
			t.Fatal(err)
		}
		_, err = chain.Authenticate(ctx, &authn.Request{Token: goneTok})
		if !errors.Is(err, authn.ErrUnauthenticated) {
			t.Fatalf("token of a deleted service account: %v, want ErrUnauthenticated", err)
		}
		c, err := chain.Authenticate(ctx, &authn.Request{Token: appTok})
		if err != nil || c.Method != "jwt+tokenreview" || c.PodName != w.pod {
			t.Fatalf("a live token: %+v, %v; want it verified and confirmed", c, err)
		}
	})
}

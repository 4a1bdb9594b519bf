package kube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/catest"
)

// remoteIssuer is a second cluster's service-account token issuer: its own signing key, its own issuer URL.
type remoteIssuer struct {
	url string
	key *ecdsa.PrivateKey
}

func newRemoteIssuer(t *testing.T, url string) *remoteIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &remoteIssuer{url: url, key: key}
}

func (r *remoteIssuer) keys() authn.KeySet {
	return authn.NewStaticKeys(jose.JSONWebKey{Key: &r.key.PublicKey, KeyID: "remote", Algorithm: "ES256", Use: "sig"})
}

// token is what the remote cluster's API server would mint for its ztunnel: bound to a pod on node, which
// is a node name the local cluster also has.
func (r *remoteIssuer) token(t *testing.T, ns, sa, pod, node string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: r.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "remote"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := jwt.Claims{Issuer: r.url, Subject: "system:serviceaccount:" + ns + ":" + sa,
		Audience: jwt.Audience{authn.DefaultAudience}, IssuedAt: jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute))}
	k8s := map[string]any{"kubernetes.io": map[string]any{
		"namespace":      ns,
		"serviceaccount": map[string]any{"name": sa, "uid": "7d3f0c1e-0000-4000-8000-000000000001"},
		"pod":            map[string]any{"name": pod, "uid": "7d3f0c1e-0000-4000-8000-000000000002"},
		"node":           map[string]any{"name": node, "uid": "7d3f0c1e-0000-4000-8000-000000000003"},
	}}
	tok, err := jwt.Signed(signer).Claims(claims).Claims(k8s).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestRemoteZtunnelCannotImpersonateLocalPods is hole 4 of issue 15: a ztunnel of cluster B, whose token
// verifies with B's issuer, must not obtain the certificate of a pod of the local cluster that runs on a node
// with the same name as its own, whatever clusterid header it sends. The caller's cluster is the verifying
// issuer's, never the header's; an issuer's tokens are accepted only with its cluster's ID.
func TestRemoteZtunnelCannotImpersonateLocalPods(t *testing.T) {
	c := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodes := startNodeAgents(t, ctx, meshcaConfig(t, c.k), c.ns+"/ztunnel")
	local, err := kube.NewAPIServerKeys(meshcaConfig(t, c.k), catest.KubeIssuer,
		authn.RemoteKeysConfig{Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	b := newRemoteIssuer(t, "https://kubernetes.cluster-b.example")
	j, err := authn.NewJWT([]authn.TokenIssuer{
		{Issuer: catest.KubeIssuer, Keys: local, ClusterID: authn.DefaultClusterID},
		{Issuer: b.url, Keys: b.keys(), ClusterID: "cluster-b"},
	}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	iss := newZtunnelIssuer(t, j, nodes)
	web := c.id("web").String()
	remoteZtunnel := b.token(t, c.ns, "ztunnel", "ztunnel-remote", c.node1)

	tests := []struct {
		name      string
		token     string
		clusterID string
		want      error // nil: issued
	}{
		{"the local ztunnel with the local cluster's ID", c.ztunnelTok, authn.DefaultClusterID, nil},
		{"the local ztunnel without a clusterid header", c.ztunnelTok, "", nil},
		{"the local ztunnel claiming cluster B", c.ztunnelTok, "cluster-b", authn.ErrUnauthenticated},
		{"cluster B's ztunnel with its own cluster ID", remoteZtunnel, "cluster-b", ca.ErrPermissionDenied},
		{"cluster B's ztunnel without a clusterid header", remoteZtunnel, "", authn.ErrUnauthenticated},
		{"cluster B's ztunnel claiming the local cluster", remoteZtunnel, authn.DefaultClusterID,
			authn.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := iss.Issue(ctx, &ca.Request{Credentials: authn.Request{Token: tt.token, ClusterID: tt.clusterID},
				CSR: csrFor(t, web), TTL: time.Hour, ImpersonatedIdentity: web})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Issue: %v, want a certificate for %s", err, web)
				}
				return
			}
			if !errors.Is(err, tt.want) || res != nil {
				t.Fatalf("Issue returned a result: %t, error %v; want nothing and %v", res != nil, err, tt.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestIssuerClusterIDDefaultsToLocal: an issuer configured without a cluster ID is the local cluster's, so
// its tokens carry the local cluster ID whatever the header says, and a header naming another cluster is
// refused rather than believed.
func TestIssuerClusterIDDefaultsToLocal(t *testing.T) {
	c := setup(t)
	b := newRemoteIssuer(t, "https://kubernetes.cluster-b.example")
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: b.url, Keys: b.keys()}},
		authn.JWTOptions{LocalClusterID: "east"})
	if err != nil {
		t.Fatal(err)
	}
	tok := b.token(t, c.ns, "ztunnel", "ztunnel-remote", c.node1)
	for _, header := range []string{"", "east"} {
		caller, err := j.Authenticate(context.Background(), &authn.Request{Token: tok, ClusterID: header})
		if err != nil {
			t.Fatalf("header %q: %v", header, err)
		}
		if caller.ClusterID != "east" {
			t.Fatalf("header %q: caller's cluster %q, want the local cluster east", header, caller.ClusterID)
		}
	}
	_, err = j.Authenticate(context.Background(), &authn.Request{Token: tok, ClusterID: "west"})
	if !errors.Is(err, authn.ErrUnauthenticated) {
		t.Fatalf("header west for the local issuer: %v, want ErrUnauthenticated", err)
	}
}

func newZtunnelIssuer(t *testing.T, a authn.Authenticator, imp authn.Impersonator) *ca.Issuer {
	t.Helper()
	dir, _ := catest.FileCA(t)
	backend := catest.FileBackend(t, dir, nil)
	iss, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: backend}},
		Authenticator: a, Impersonator: imp, Policy: ca.Policy{TrustDomain: catest.TrustDomain},
		Logger: catest.DiscardLogger(), Audit: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

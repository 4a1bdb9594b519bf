package kube_test

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/catest"
)

// workload is a service account with a pod scheduled on a node, all real API objects.
type workload struct {
	ns, sa, pod, node string
	saUID, podUID     types.UID
}

// newWorkload creates the node (if missing), the service account and a pod of it on that node.
func newWorkload(t *testing.T, k *catest.Kube, ns, sa, node string) workload {
	t.Helper()
	ctx := context.Background()
	_, err := k.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}},
		metav1.CreateOptions{})
	if err == nil {
		t.Cleanup(func() { _ = k.Client.CoreV1().Nodes().Delete(context.Background(), node, metav1.DeleteOptions{}) })
	} else if !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating node %s: %v", node, err)
	}
	s, err := k.Client.CoreV1().ServiceAccounts(ns).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating service account %s/%s: %v", ns, sa, err)
	}
	if s == nil || s.UID == "" {
		if s, err = k.Client.CoreV1().ServiceAccounts(ns).Get(ctx, sa, metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := k.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: sa + "-"},
		Spec: corev1.PodSpec{ServiceAccountName: sa, NodeName: node,
			Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod of %s/%s on %s: %v", ns, sa, node, err)
	}
	return workload{ns: ns, sa: sa, pod: p.Name, node: node, saUID: s.UID, podUID: p.UID}
}

// mintToken asks the TokenRequest API for a token of w's service account, bound to w's pod.
func mintToken(t *testing.T, client kubernetes.Interface, w workload, audience string) string {
	t.Helper()
	exp := int64(600) // the API server's minimum
	tr, err := client.CoreV1().ServiceAccounts(w.ns).CreateToken(context.Background(), w.sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &exp,
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: w.pod, UID: w.podUID}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", w.ns, w.sa, err)
	}
	return tr.Status.Token
}

// forgeToken signs claims for w with the cluster's own service-account signing key, exactly as the API
// server does, but with times of the test's choosing (TokenRequest cannot mint an already expired token).
func forgeToken(t *testing.T, k *catest.Kube, w workload, audience string, iat, exp time.Time) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(k.Dir, "certs", "sa.key"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	key, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", keyID(t, &key.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.Claims{Issuer: catest.KubeIssuer, Subject: "system:serviceaccount:" + w.ns + ":" + w.sa,
		Audience: jwt.Audience{audience}, IssuedAt: jwt.NewNumericDate(iat), NotBefore: jwt.NewNumericDate(iat),
		Expiry: jwt.NewNumericDate(exp)}
	k8s := map[string]any{"kubernetes.io": map[string]any{
		"namespace":      w.ns,
		"serviceaccount": map[string]any{"name": w.sa, "uid": string(w.saUID)},
		"pod":            map[string]any{"name": w.pod, "uid": string(w.podUID)},
	}}
	tok, err := jwt.Signed(signer).Claims(claims).Claims(k8s).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// keyID is the API server's key ID for a service-account key: base64url(SHA-256(PKIX DER)).
func keyID(t *testing.T, pub *rsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// counting returns a copy of cfg whose requests matching match are counted, as the API server received them.
func counting(cfg *rest.Config, match func(*http.Request) bool) (*rest.Config, *atomic.Int64) {
	var n atomic.Int64
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if match(r) {
				n.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	return c, &n
}

func isTokenReview(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/tokenreviews")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// clock is a controllable clock, starting at the real time.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }
func newClient(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// meshcaConfig is the client configuration meshca's Kubernetes code runs with in tests: k's admin
// impersonating meshca's service account with exactly the RBAC of manifests/base.
func meshcaConfig(t *testing.T, k *catest.Kube) *rest.Config {
	t.Helper()
	return catest.MeshcaRBAC(t, k)
}

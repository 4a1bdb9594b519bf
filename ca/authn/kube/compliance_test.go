package kube_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/compliance"
)

// classicalFront is a remote cluster's API server as a client sees it when it offers only classical TLS (TLS
// 1.2, X25519): a reverse proxy in front of the real kube-apiserver k. It counts the requests it forwarded.
type classicalFront struct {
	url       string
	caPEM     []byte
	forwarded atomic.Int64
}

func startClassicalFront(t *testing.T, k *catest.Kube) *classicalFront {
	t.Helper()
	target, err := url.Parse(k.URL)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rest.TransportFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAFile: k.CAFile}})
	if err != nil {
		t.Fatal(err)
	}
	f := &classicalFront{}
	proxy := &httputil.ReverseProxy{Transport: rt, Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.forwarded.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{MaxVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.X25519}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.url = srv.URL
	f.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return f
}

// A remote cluster's API server reached through an istiod-style remote secret follows COMPLIANCE_POLICY like
// the local one: under pqc one that offers only classical TLS is refused (the token is not sent to it), and
// without a policy the same cluster reviews the token.
func TestRemoteClusterClientsFollowTheCompliancePolicy(t *testing.T) {
	a := catest.SharedKube(t)
	ns := a.Namespace(t)
	w := newWorkload(t, a, ns, "app", "node-"+ns)
	tok := mintToken(t, a.Client, w, authn.DefaultAudience)
	front := startClassicalFront(t, a)
	kubeconfig := fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: remote
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: remote
  user: {token: %q}
contexts:
- name: remote
  context: {cluster: remote, user: remote}
current-context: remote
`, front.url, base64.StdEncoding.EncodeToString(front.caPEM), a.Config.BearerToken)
	if _, err := a.Client.CoreV1().Secrets(ns).Create(context.Background(),
		remoteSecret("istio-remote-secret-classical", map[string][]byte{"cluster-classical": kubeconfig}),
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		policy compliance.Policy
		want   error // nil: accepted
	}{
		{"under pqc the classical-only remote API server is refused", compliance.PQC, authn.ErrUnavailable},
		{"without a policy the remote API server reviews the token", compliance.None, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var c clock
			m, err := kube.NewMultiCluster(kube.MultiClusterConfig{Client: a.Client, Namespace: ns,
				Local: newTokenReview(t, meshcaConfig(t, a), &c, nil), TLSPolicy: tc.policy,
				Review: kube.TokenReviewConfig{Clock: c.now}, Logger: catest.DiscardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Start(ctx); err != nil {
				t.Fatal(err)
			}
			waitClusters(t, m, "cluster-classical")
			before := front.forwarded.Load()
			caller, err := m.Authenticate(ctx, &authn.Request{Token: tok, ClusterID: "cluster-classical"})
			if tc.want == nil {
				if err != nil || caller.Namespace != ns {
					t.Fatalf("Authenticate: %v, %+v; want the caller of namespace %s", err, caller, ns)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Authenticate: %v, want %v", err, tc.want)
			}
			if n := front.forwarded.Load() - before; n != 0 {
				t.Fatalf("%d requests reached the classical-only API server under %s", n, tc.policy)
			}
			t.Logf("refused: %v", err)
		})
	}
}

package kube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
)

// podLists counts LIST requests for pods that the API server receives from cfg's client.
func podLists(cfg *rest.Config) (*rest.Config, *atomic.Int64) {
	return counting(cfg, func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/pods") &&
			r.URL.Query().Get("watch") != "true"
	})
}

func startNodeAgents(t *testing.T, ctx context.Context, cfg *rest.Config, trusted ...string) *kube.NodeAgents {
	t.Helper()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := kube.NewNodeAgents(kube.NodeAgentsConfig{Client: client, TrustedAccounts: trusted,
		SyncTimeout: 30 * time.Second, Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("pod informer synced in %s", time.Since(start))
	return a
}

// cluster is a namespace with a ztunnel on node 1, and workloads on nodes 1 and 2.
type cluster struct {
	k                  *catest.Kube
	ns, node1, node2   string
	ztunnel, web, db   workload
	ztunnelTok, webTok string
	reviewer           *kube.TokenReview
}

func setup(t *testing.T) *cluster {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	c := &cluster{k: k, ns: ns, node1: "n1-" + ns, node2: "n2-" + ns}
	c.ztunnel = newWorkload(t, k, ns, "ztunnel", c.node1)
	c.web = newWorkload(t, k, ns, "web", c.node1)
	c.db = newWorkload(t, k, ns, "db", c.node2)
	done := newWorkload(t, k, ns, "done", c.node1)
	p, err := k.Client.CoreV1().Pods(ns).Get(context.Background(), done.pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodSucceeded
	if _, err := k.Client.CoreV1().Pods(ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.ztunnelTok = mintToken(t, k.Client, c.ztunnel, authn.DefaultAudience)
	c.webTok = mintToken(t, k.Client, c.web, authn.DefaultAudience)
	client, err := kubernetes.NewForConfig(meshcaConfig(t, k))
	if err != nil {
		t.Fatal(err)
	}
	c.reviewer, err = kube.NewTokenReview(kube.TokenReviewConfig{Client: client, Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// caller authenticates token through the API server, as meshca does.
func (c *cluster) caller(t *testing.T, token string) *authn.Caller {
	t.Helper()
	req := &authn.Request{Token: token, ClusterID: authn.DefaultClusterID}
	caller, err := c.reviewer.Authenticate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return caller
}

func (c *cluster) id(sa string) csr.Identity {
	return csr.Identity{TrustDomain: catest.TrustDomain, Namespace: c.ns, ServiceAccount: sa}
}

func TestCheckImpersonation(t *testing.T) {
	c := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, lists := podLists(meshcaConfig(t, c.k))
	a := startNodeAgents(t, ctx, cfg, "istio-system/ztunnel", c.ns+"/ztunnel")

	zt := c.caller(t, c.ztunnelTok)
	if zt.NodeName != c.node1 {
		t.Fatalf("ztunnel's bound token names node %q, want %q", zt.NodeName, c.node1)
	}
	ztByPod := *zt
	ztByPod.NodeName = "" // a token without the node claim: the node comes from the caller's pod
	ztOtherCluster := *zt
	ztOtherCluster.ClusterID = "remote-1"
	ztNoBinding := *zt
	ztNoBinding.NodeName, ztNoBinding.PodName, ztNoBinding.PodUID = "", "", ""
	ztWrongUID := ztByPod
	ztWrongUID.PodUID = "00000000-0000-0000-0000-000000000000"

	// lists is the pod LISTs a request costs: none when the informer answers (allowed, or refused before any
	// pod is looked at), one direct lookup when the cache holds no matching pod (it may be brand new).
	tests := []struct {
		name   string
		caller *authn.Caller
		target string
		allow  bool
		lists  int64
	}{
		{"ztunnel asks for a pod on its node", zt, "web", true, 0},
		{"ztunnel without a node claim asks for a pod on its node (found through its pod)", &ztByPod, "web", true,
			0},
		{"ztunnel asks for a pod on another node", zt, "db", false, 1},
		{"ztunnel asks for a pod that has completed", zt, "done", false, 1},
		{"ztunnel asks for a service account with no pod", zt, "nobody", false, 1},
		{"an untrusted workload asks for a pod on its own node", c.caller(t, c.webTok), "ztunnel", false, 0},
		{"ztunnel of another cluster", &ztOtherCluster, "web", false, 0},
		{"ztunnel whose token names no pod or node", &ztNoBinding, "web", false, 0},
		{"ztunnel whose pod UID does not match its pod", &ztWrongUID, "web", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listsBefore := lists.Load()
			err := a.CheckImpersonation(ctx, tt.caller, c.id(tt.target))
			if n := lists.Load() - listsBefore; n != tt.lists {
				t.Errorf("%d pod LISTs, want %d", n, tt.lists)
			}
			if tt.allow && err != nil {
				t.Fatalf("CheckImpersonation: %v, want allowed", err)
			}
			if !tt.allow {
				// The issuance core adds ca.ErrPermissionDenied (TestIssuerIssuesPodIdentityToZtunnel).
				if !errors.Is(err, authn.ErrImpersonationDenied) {
					t.Fatalf("CheckImpersonation: %v, want ErrImpersonationDenied", err)
				}
				t.Logf("denied: %v", err)
			}
		})
	}
	// Allowed requests are answered from the informer: no LIST per request.
	lists.Store(0)
	for range 100 {
		if err := a.CheckImpersonation(ctx, zt, c.id("web")); err != nil {
			t.Fatal(err)
		}
	}
	if n := lists.Load(); n != 0 {
		t.Fatalf("%d pod LISTs for 100 allowed requests, want 0 (informer)", n)
	}
}

// TestCheckImpersonationNewPodNotYetCached freezes the informer (its context ends) so the cache cannot hold a pod
// created afterwards: the one direct lookup must find it.
func TestCheckImpersonationNewPodNotYetCached(t *testing.T) {
	c := setup(t)
	ctx, stopInformer := context.WithCancel(context.Background())
	cfg, lists := podLists(meshcaConfig(t, c.k))
	a := startNodeAgents(t, ctx, cfg, c.ns+"/ztunnel")
	stopInformer()
	time.Sleep(200 * time.Millisecond)
	newWorkload(t, c.k, c.ns, "fresh", c.node1)
	zt := c.caller(t, c.ztunnelTok)
	before := lists.Load()
	if err := a.CheckImpersonation(context.Background(), zt, c.id("fresh")); err != nil {
		t.Fatalf("pod created after the cache froze: %v, want allowed through the direct lookup", err)
	}
	if n := lists.Load() - before; n != 1 {
		t.Fatalf("%d pod LISTs, want exactly 1 direct lookup", n)
	}
	newWorkload(t, c.k, c.ns, "elsewhere", c.node2)
	err := a.CheckImpersonation(context.Background(), zt, c.id("elsewhere"))
	if !errors.Is(err, authn.ErrImpersonationDenied) {
		t.Fatalf("new pod on another node: %v, want denied", err)
	}
}

func TestNewNodeAgentsValidates(t *testing.T) {
	_, err := kube.NewNodeAgents(kube.NodeAgentsConfig{TrustedAccounts: []string{"ztunnel", "a/b/c", "/x"}})
	if err == nil {
		t.Fatal("New accepted no client and malformed accounts")
	}
	for _, want := range []string{"client", `"ztunnel"`, `"a/b/c"`, `"/x"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// TestIssuerIssuesPodIdentityToZtunnel runs the whole issuance: a ztunnel token, verified by TokenReview,
// asks for the certificate of a pod on its node and gets that pod's SPIFFE ID.
func TestIssuerIssuesPodIdentityToZtunnel(t *testing.T) {
	c := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := startNodeAgents(t, ctx, meshcaConfig(t, c.k), c.ns+"/ztunnel")
	iss := newZtunnelIssuer(t, c.reviewer, a)
	web, db := c.id("web").String(), c.id("db").String()
	ztunnel := authn.Request{Token: c.ztunnelTok, ClusterID: authn.DefaultClusterID}
	res, err := iss.Issue(ctx, &ca.Request{Credentials: ztunnel, CSR: csrFor(t, web), TTL: time.Hour,
		ImpersonatedIdentity: web})
	if err != nil {
		t.Fatalf("ztunnel asking for %s on its node: %v", web, err)
	}
	if got := res.Chain[0].URIs; len(got) != 1 || got[0].String() != web {
		t.Fatalf("issued certificate for %v, want exactly %s", got, web)
	}
	_, err = iss.Issue(ctx, &ca.Request{Credentials: ztunnel, CSR: csrFor(t, db), TTL: time.Hour,
		ImpersonatedIdentity: db})
	if !errors.Is(err, ca.ErrPermissionDenied) || !errors.Is(err, authn.ErrImpersonationDenied) {
		t.Fatalf("ztunnel asking for %s on another node: %v, want PermissionDenied", db, err)
	}
	_, err = iss.Issue(ctx, &ca.Request{Credentials: authn.Request{Token: c.webTok, ClusterID: authn.DefaultClusterID},
		CSR: csrFor(t, c.id("ztunnel").String()), TTL: time.Hour, ImpersonatedIdentity: c.id("ztunnel").String()})
	if !errors.Is(err, ca.ErrPermissionDenied) || !errors.Is(err, authn.ErrImpersonationDenied) {
		t.Fatalf("a workload impersonating ztunnel: %v, want PermissionDenied", err)
	}
}

func csrFor(t *testing.T, spiffeID string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(spiffeID)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

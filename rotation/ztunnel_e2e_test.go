package rotation_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// peer is one workload of the handshake mesh: a sidecar pod (podAgent, files written by pilot-agent) or an
// identity a ztunnel acts for (ztWorkload, kept in memory as ztunnel does).
type peer interface {
	label() string
	spiffeID() string
	// identity is the key and chain presented at a handshake now.
	identity() (*tls.Certificate, error)
	// anchors are the roots peers are verified against now.
	anchors() ([]*x509.Certificate, error)
}

func (a *podAgent) label() string    { return a.name }
func (a *podAgent) spiffeID() string { return a.id }

// ztunnel account and namespace as Istio's ambient install has them (CA_TRUSTED_NODE_ACCOUNTS).
const ztunnelNS, ztunnelSA = "istio-system", "ztunnel"

// nodeAgents returns meshca's ztunnel check (kube.NodeAgents) on the shared kube-apiserver, with meshca's
// RBAC, and the namespace and node where the test's ambient workloads run: one pod per service account in
// sas, scheduled on node.
func nodeAgents(t *testing.T, sas ...string) (imp *kube.NodeAgents, ns, node string) {
	t.Helper()
	k := catest.SharedKube(t)
	ns = k.Namespace(t)
	node = "zt-node-" + ns
	ctx := context.Background()
	for _, sa := range sas {
		_, err := k.Client.CoreV1().ServiceAccounts(ns).Create(ctx,
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating service account %s/%s: %v", ns, sa, err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: sa + "-0"}, Spec: corev1.PodSpec{ServiceAccountName: sa,
			NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}}}
		_, err = k.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating pod %s/%s-0 on %s: %v", ns, sa, node, err)
		}
	}
	client, err := kubernetes.NewForConfig(catest.MeshcaRBAC(t, k))
	if err != nil {
		t.Fatal(err)
	}
	imp, err = kube.NewNodeAgents(kube.NodeAgentsConfig{Client: client, TrustedAccounts: []string{
		ztunnelNS + "/" + ztunnelSA}, SyncTimeout: 30 * time.Second, Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ictx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := imp.Start(ictx); err != nil {
		t.Fatal(err)
	}
	return imp, ns, node
}

// ztunnelAgent behaves as ztunnel does towards its CA: one bound token for its own pod, and per workload
// identity on its node a CreateCertificate with ImpersonatedIdentity, renewed at half the leaf's life. Per
// identity it keeps the leaf, the intermediates one per element, and the last element split into its roots
// (ztunnel src/tls/certificate.rs), in memory.
type ztunnelAgent struct {
	pod, node string
	client    pb.IstioCertificateServiceClient
	token     string
	ttl       time.Duration
	paused    atomic.Bool
	workloads []*ztWorkload
	errs      atomic.Int64 // failed requests (retried after a second)
}

// ztWorkload is one identity a ztunnel acts for: a holder of its own (ztunnel's pod and the identity).
type ztWorkload struct {
	zt  *ztunnelAgent
	id  string
	cur atomic.Pointer[ztCert]
}

type ztCert struct {
	cert  tls.Certificate
	roots []*x509.Certificate
}

func (w *ztWorkload) label() string    { return ztunnelNS + "/" + w.zt.pod + " for " + w.id }
func (w *ztWorkload) spiffeID() string { return w.id }

func (w *ztWorkload) identity() (*tls.Certificate, error) {
	if c := w.cur.Load(); c != nil {
		return &c.cert, nil
	}
	return nil, fmt.Errorf("%s: no certificate yet", w.label())
}

func (w *ztWorkload) anchors() ([]*x509.Certificate, error) {
	if c := w.cur.Load(); c != nil {
		return c.roots, nil
	}
	return nil, fmt.Errorf("%s: no roots yet", w.label())
}

// startZtunnel runs a ztunnel-style client named pod on node, acting for ids, asking for ttl certificates of
// m, whose serving certificate chains to one of caRoots, until the test ends.
func startZtunnel(t *testing.T, m *catest.Meshca, caRoots *x509.CertPool, pod, node string, ttl time.Duration,
	ids ...string) *ztunnelAgent {
	t.Helper()
	tok, err := m.Tokens.Mint(devtoken.Claims{Namespace: ztunnelNS, ServiceAccount: ztunnelSA, PodName: pod,
		PodUID: "uid-" + pod, NodeName: node, TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(m.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: caRoots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	z := &ztunnelAgent{pod: pod, node: node, client: pb.NewIstioCertificateServiceClient(conn), token: tok, ttl: ttl}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		conn.Close()
	})
	for _, id := range ids {
		w := &ztWorkload{zt: z, id: id}
		z.workloads = append(z.workloads, w)
		wg.Go(func() { w.run(ctx) })
	}
	return z
}

// run keeps w's certificate renewed at half its life while the ztunnel is not paused.
func (w *ztWorkload) run(ctx context.Context) {
	next := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		if w.zt.paused.Load() {
			next = time.Now().Add(100 * time.Millisecond)
			continue
		}
		leaf, err := w.renew(ctx)
		if err != nil {
			w.zt.errs.Add(1)
			next = time.Now().Add(time.Second)
			continue
		}
		next = time.Now().Add(time.Until(leaf.NotAfter) / 2)
	}
}

// renew asks meshca for w's certificate now and keeps it.
func (w *ztWorkload) renew(ctx context.Context) (*x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(w.id)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		return nil, err
	}
	md, err := structpb.NewStruct(map[string]any{"ImpersonatedIdentity": w.id})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+w.zt.token,
		"clusterid", authn.DefaultClusterID)
	resp, err := w.zt.client.CreateCertificate(ctx, &pb.IstioCertificateRequest{
		Csr:              string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
		ValidityDuration: int64(w.zt.ttl / time.Second), Metadata: md})
	if err != nil {
		return nil, err
	}
	chain := resp.GetCertChain()
	if len(chain) < 2 {
		return nil, fmt.Errorf("a chain of %d elements", len(chain))
	}
	c := &ztCert{cert: tls.Certificate{PrivateKey: key}}
	for i, elem := range chain {
		certs, err := parseAll([]byte(elem))
		switch {
		case err != nil:
			return nil, fmt.Errorf("element %d: %w", i, err)
		case i == len(chain)-1: // the trust bundle: every root in it
			c.roots = certs
		case len(certs) != 1:
			return nil, fmt.Errorf("element %d holds %d certificates, want 1", i, len(certs))
		default:
			c.cert.Certificate = append(c.cert.Certificate, certs[0].Raw)
		}
	}
	if c.cert.Leaf, err = x509.ParseCertificate(c.cert.Certificate[0]); err != nil {
		return nil, err
	}
	w.cur.Store(c)
	return c.cert.Leaf, nil
}

// pause stops the ztunnel's renewals, as a stopped process would, after one last renewal of every identity
// (so that their certificates outlive a test that needs it stopped).
func (z *ztunnelAgent) pause(ctx context.Context) error {
	z.paused.Store(true)
	var errs []error
	for _, w := range z.workloads {
		if _, err := w.renew(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", w.label(), err))
		}
	}
	return errors.Join(errs...)
}

func parseAll(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

package kubesigner_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authorizationv1 "k8s.io/api/authorization/v1"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/kubesigner"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/manifests"
)

const (
	signerName = "meshca.io/workloads"
	istiodUser = kubesigner.DefaultRequester
	otherUser  = "system:serviceaccount:default:not-istiod"
)

// requesterRBAC lets istiod and another service account create, approve, read and delete
// CertificateSigningRequests for meshca.io signers, as istiod's ClusterRole does for its own: the tests create
// requests as both. meshca's own account gets nothing from it.
const requesterRBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubesigner-test-requester}
rules:
  - apiGroups: ["certificates.k8s.io"]
    resources: ["certificatesigningrequests"]
    verbs: ["create", "get", "list", "watch", "delete"]
  - apiGroups: ["certificates.k8s.io"]
    resources: ["certificatesigningrequests/approval"]
    verbs: ["update"]
  - apiGroups: ["certificates.k8s.io"]
    resources: ["signers"]
    resourceNames: ["meshca.io/*", "example.com/*"]
    verbs: ["approve"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kubesigner-test-requester}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubesigner-test-requester}
subjects:
  - {kind: ServiceAccount, name: istiod, namespace: istio-system}
  - {kind: ServiceAccount, name: not-istiod, namespace: default}
`

var rbacOnce sync.Map // *catest.Kube → struct{}

// cluster returns the shared cluster with meshca's RBAC (base and the k8s-signer component) in force, a
// configuration acting as meshca's service account, and clients acting as istiod and as another account.
func cluster(t *testing.T) (k *catest.Kube, meshca *rest.Config, istiod, other kubernetes.Interface) {
	t.Helper()
	k = catest.SharedKube(t)
	meshca = catest.MeshcaRBAC(t, k)
	if _, done := rbacOnce.LoadOrStore(k, struct{}{}); !done {
		ctx := context.Background()
		for _, doc := range [][]byte{manifests.K8sSignerRBAC, []byte(requesterRBAC)} {
			objs, err := catest.DecodeYAML(doc)
			if err != nil {
				t.Fatal(err)
			}
			opts := catest.ApplyOptions{FieldManager: "kubesigner-test"}
			if err := catest.Apply(ctx, k.Config, objs, opts); err != nil {
				t.Fatal(err)
			}
		}
		catest.WaitAllowed(t, meshca, authorizationv1.ResourceAttributes{Group: "certificates.k8s.io",
			Resource: "certificatesigningrequests", Subresource: "status", Verb: "update"})
		catest.WaitAllowed(t, meshca, authorizationv1.ResourceAttributes{Group: "certificates.k8s.io",
			Resource: "signers", Name: "meshca.io/*", Verb: "sign"})
	}
	istiod = impersonating(t, k, istiodUser, "istio-system")
	other = impersonating(t, k, otherUser, "default")
	catest.WaitAllowed(t, impersonatingConfig(k, istiodUser, "istio-system"), authorizationv1.ResourceAttributes{
		Group: "certificates.k8s.io", Resource: "certificatesigningrequests", Verb: "create"})
	return k, meshca, istiod, other
}

func impersonatingConfig(k *catest.Kube, user, ns string) *rest.Config {
	cfg := rest.CopyConfig(k.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	return cfg
}

func impersonating(t *testing.T, k *catest.Kube, user, ns string) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(impersonatingConfig(k, user, ns))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// replica is one meshca replica's issuer and signer.
type replica struct {
	issuer *ca.Issuer
	signer *kubesigner.Signer
	reg    *prometheus.Registry
	audit  *syncBuffer
	stop   context.CancelFunc
	done   chan struct{}
}

type replicaOptions struct {
	lease, identity string
	caDir           string
	signers         []kubesigner.SignerConfig
	router          kubesigner.Router
	extra           []ca.NamedBackend // after "primary", the file CA in caDir
	rules           policy.Config
}

// startReplica starts a signer acting as meshca's service account on a file CA in dir, stopped in Cleanup.
func startReplica(t *testing.T, meshca *rest.Config, o replicaOptions) *replica {
	t.Helper()
	reg := prometheus.NewRegistry()
	audit := &syncBuffer{}
	issuer, err := ca.New(ca.Config{
		Backends: append([]ca.NamedBackend{{Name: "primary", Backend: catest.FileBackend(t, o.caDir, reg)}},
			o.extra...),
		Authenticator: authn.Chain{}, Policy: ca.Policy{TrustDomain: catest.TrustDomain}, Rules: o.rules,
		Logger: catest.DiscardLogger(), Audit: slog.New(slog.NewJSONHandler(audit, nil)), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.signers == nil {
		o.signers = []kubesigner.SignerConfig{{Name: signerName}}
	}
	s, err := kubesigner.New(kubesigner.Config{Signers: o.signers, LeaseNamespace: catest.MeshcaNamespace,
		LeaseName: o.lease, Identity: o.identity, LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second,
		RetryPeriod: 500 * time.Millisecond, Kube: meshca, Issuer: issuer, Router: o.router,
		Logger: catest.DiscardLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{issuer: issuer, signer: s, reg: reg, audit: audit, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("signer %s: %v", o.identity, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// request describes a CertificateSigningRequest to create.
type request struct {
	csr      []byte
	signer   string
	usages   []certv1.KeyUsage
	seconds  int32
	approved bool
	denied   bool
}

var istioUsages = []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageKeyEncipherment,
	certv1.UsageServerAuth, certv1.UsageClientAuth}

// create makes the request as client and, when asked, approves or denies it as the cluster admin. It is
// deleted in Cleanup.
func create(t *testing.T, k *catest.Kube, client kubernetes.Interface, r request) string {
	t.Helper()
	ctx := context.Background()
	if r.signer == "" {
		r.signer = signerName
	}
	if r.usages == nil {
		r.usages = istioUsages
	}
	obj := &certv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "csr-workload-"},
		Spec: certv1.CertificateSigningRequestSpec{Request: r.csr, SignerName: r.signer, Usages: r.usages}}
	if r.seconds != 0 {
		obj.Spec.ExpirationSeconds = &r.seconds
	}
	got, err := client.CertificatesV1().CertificateSigningRequests().Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating CSR: %v", err)
	}
	t.Cleanup(func() {
		_ = k.Client.CertificatesV1().CertificateSigningRequests().Delete(context.Background(), got.Name,
			metav1.DeleteOptions{})
	})
	if r.approved || r.denied {
		decide(t, k, got.Name, r.denied)
	}
	return got.Name
}

// decide approves (or denies) a request as the cluster admin.
func decide(t *testing.T, k *catest.Kube, name string, deny bool) {
	t.Helper()
	ctx := context.Background()
	csrs := k.Client.CertificatesV1().CertificateSigningRequests()
	got, err := csrs.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := certv1.CertificateSigningRequestCondition{Type: certv1.CertificateApproved, Status: corev1.ConditionTrue,
		Reason: "Test", Message: "approved by the test"}
	if deny {
		c.Type, c.Message = certv1.CertificateDenied, "denied by the test"
	}
	got.Status.Conditions = append(got.Status.Conditions, c)
	if _, err := csrs.UpdateApproval(ctx, name, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, k *catest.Kube, name string) *certv1.CertificateSigningRequest {
	t.Helper()
	got, err := k.Client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), name,
		metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// failed returns the request's Failed condition, or nil.
func failed(r *certv1.CertificateSigningRequest) *certv1.CertificateSigningRequestCondition {
	for i, c := range r.Status.Conditions {
		if c.Type == certv1.CertificateFailed {
			return &r.Status.Conditions[i]
		}
	}
	return nil
}

// parseChain decodes status.certificate.
func parseChain(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// metric reads one counter or gauge from the replica's registry; 0 when absent.
func (r *replica) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// allowed asks the API server whether cfg's user may do attrs.
func allowed(t *testing.T, cfg *rest.Config, attrs authorizationv1.ResourceAttributes) bool {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(),
		&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &attrs}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Status.Allowed
}

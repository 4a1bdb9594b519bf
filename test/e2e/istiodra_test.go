package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/kubesigner"
	"github.com/meshca/meshca/internal/testproc"
	"github.com/meshca/meshca/manifests"
)

const raSigner = "meshca.io/workloads"

// istiodAdmin makes istiod's service account a cluster admin in the test cluster: istiod watches most kinds
// of the cluster, and the test is about the certificate path, not istiod's own ClusterRole. meshca keeps
// exactly the RBAC it ships with.
const istiodAdmin = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: istiod-e2e-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
  - {kind: ServiceAccount, name: istiod, namespace: istio-system}
`

// TestPilotAgentThroughIstiodRA runs the whole registration-authority path with Istio's real binaries:
// pilot-agent asks istiod (pilot-discovery with EXTERNAL_CA=ISTIOD_RA_KUBERNETES_API and K8S_SIGNER set to
// meshca's signer) for its certificate with a service-account token; istiod authenticates it, creates and
// approves a CertificateSigningRequest on the real kube-apiserver, and meshca's Kubernetes signer signs it.
// The chain the agent writes must be meshca's, for exactly the agent's SPIFFE ID, and meshca's audit record
// must name istiod as the caller.
func TestPilotAgentThroughIstiodRA(t *testing.T) {
	istiodBin := catest.Binary(t, "pilot-discovery")
	agentBin := catest.Binary(t, "pilot-agent")
	k := catest.StartKube(t)
	meshcaCfg := catest.MeshcaRBAC(t, k)
	ctx := context.Background()
	for _, doc := range [][]byte{manifests.K8sSignerRBAC, []byte(istiodAdmin)} {
		objs, err := catest.DecodeYAML(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := catest.Apply(ctx, k.Config, objs, catest.ApplyOptions{FieldManager: "e2e"}); err != nil {
			t.Fatal(err)
		}
	}

	// meshca: a file CA, the issuance core and the signer for meshca.io/workloads.
	dir, gen := catest.FileCA(t)
	reg := prometheus.NewRegistry()
	audit := &catest.SyncBuffer{}
	issuer, err := ca.New(ca.Config{
		Backends:      []ca.NamedBackend{{Name: "primary", Backend: catest.FileBackend(t, dir, reg)}},
		Authenticator: authn.Chain{}, Policy: ca.Policy{TrustDomain: catest.TrustDomain},
		Logger: catest.DiscardLogger(), Audit: slog.New(slog.NewJSONHandler(audit, nil)), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := kubesigner.New(kubesigner.Config{
		Signers:        []kubesigner.SignerConfig{{Name: raSigner}},
		LeaseNamespace: catest.MeshcaNamespace, Identity: "meshca-0", Kube: meshcaCfg, Issuer: issuer,
		Logger: catest.DiscardLogger(), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = signer.Run(sctx) }()
	t.Cleanup(func() { stop(); <-done })

	const ns, sa = "shop", "cart"
	token := workloadToken(t, k, ns, sa)
	started := time.Now()
	is := startIstiod(t, istiodBin, k, gen.RootPEM)
	t.Logf("istiod ready after %s", time.Since(started).Round(time.Millisecond))
	a := startAgent(t, agentBin, is.caAddr, is.servingRootPEM, agentConfig{Namespace: ns, ServiceAccount: sa,
		Token: token, ECDSA: true, SecretTTL: time.Hour})
	obs := a.watchCerts(t, 1, 3*time.Minute)
	a.stop()
	t.Logf("the agent wrote its certificate %s after it started", obs[0].seen.Sub(a.started).Round(time.Millisecond))

	wantID := "spiffe://" + catest.TrustDomain + "/ns/" + ns + "/sa/" + sa
	chain := obs[0].chain
	verifyChain(t, gen.Root, chain, wantID)
	verifySVID(t, gen.Root, chain, wantID)
	if len(chain) < 2 || !chain[1].Equal(gen.Intermediate) {
		t.Errorf("the agent's chain is not meshca's: its second certificate is not meshca's intermediate")
	}
	if n, _ := catest.Sample(t, reg, "meshca_k8s_signer_requests_total",
		map[string]string{"signer": raSigner, "result": kubesigner.ResultSigned}); n < 1 {
		t.Errorf("meshca_k8s_signer_requests_total{result=signed} = %v, want at least 1", n)
	}
	for _, want := range []string{`"authn":"k8s-csr"`, `"caller":"ns/istio-system/sa/istiod"`,
		`"identity":"` + wantID + `"`, `"outcome":"issued"`} {
		if !strings.Contains(audit.String(), want) {
			t.Errorf("meshca's audit log lacks %s:\n%s", want, audit.String())
		}
	}
}

// workloadToken creates the workload's ServiceAccount and returns a token for it with istiod's audience
// (istio-ca), as the kubelet projects it into ./var/run/secrets/tokens/istio-token.
func workloadToken(t *testing.T, k *catest.Kube, ns, sa string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := k.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Client.CoreV1().ServiceAccounts(ns).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	seconds := int64(3600)
	tr, err := k.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"istio-ca"}, ExpirationSeconds: &seconds}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// istiod is a running pilot-discovery.
type istiod struct {
	// caAddr is the secure gRPC address (istiod's 15012) that serves the CA and XDS.
	caAddr string
	// servingRootPEM verifies istiod's serving certificate.
	servingRootPEM []byte
}

// startIstiod runs pilot-discovery as istiod's service account (a kubeconfig impersonating it) against k, in
// registration-authority mode for meshca's signer, with meshca's root as the external CA's certificate
// (./etc/external-ca-cert/root-cert.pem in its working directory) and its own serving certificate for
// 127.0.0.1. It returns once /ready answers; the process is stopped when the test ends and its log printed
// if the test failed.
func startIstiod(t *testing.T, bin string, k *catest.Kube, meshcaRootPEM []byte) *istiod {
	t.Helper()
	wd := t.TempDir()
	for name, data := range map[string][]byte{
		"etc/external-ca-cert/root-cert.pem": meshcaRootPEM,
		"kubeconfig":                         istiodKubeconfig(k),
	} {
		p := filepath.Join(wd, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	certPEM, keyPEM := servingCert(t)
	tlsDir := filepath.Join(wd, "tls")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": certPEM} {
		if err := os.WriteFile(filepath.Join(tlsDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t)) }
	httpAddr, secure := addr(), addr()
	cmd := exec.Command(bin, "discovery",
		"--kubeconfig", filepath.Join(wd, "kubeconfig"),
		"--httpAddr", httpAddr, "--httpsAddr", addr(), "--grpcAddr", addr(), "--secureGRPCAddr", secure,
		"--monitoringAddr", addr(), "--ctrlz_port", fmt.Sprint(catest.FreePort(t)), "--ctrlz_address", "127.0.0.1",
		"--tlsCertFile", filepath.Join(tlsDir, "tls.crt"), "--tlsKeyFile", filepath.Join(tlsDir, "tls.key"),
		"--caCertFile", filepath.Join(tlsDir, "ca.crt"),
		"--domain", "cluster.local", "--log_output_level", "default:info")
	cmd.Dir = wd
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + wd,
		"POD_NAMESPACE=istio-system", "POD_NAME=istiod-0", "ISTIOD_SERVICE_ACCOUNT=istiod",
		"EXTERNAL_CA=ISTIOD_RA_KUBERNETES_API", "K8S_SIGNER=" + raSigner,
		"CLUSTER_ID=Kubernetes", "TRUST_DOMAIN=" + catest.TrustDomain,
		"INJECTION_WEBHOOK_CONFIG_NAME=", "VALIDATION_WEBHOOK_CONFIG_NAME=",
	}
	logPath := filepath.Join(wd, "istiod.log")
	p, err := testproc.Start(cmd, logPath)
	if err != nil {
		t.Fatalf("starting pilot-discovery: %v", err)
	}
	t.Cleanup(func() {
		_ = p.Stop(10 * time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("pilot-discovery log (%s):\n%s", logPath, tail(b, 200))
		}
	})
	if err := p.WaitReady(4*time.Minute, 500*time.Millisecond, httpOK("http://"+httpAddr+"/ready")); err != nil {
		t.Fatalf("pilot-discovery did not become ready: %v", err)
	}
	return &istiod{caAddr: secure, servingRootPEM: certPEM}
}

// istiodKubeconfig is a kubeconfig for k that acts as istiod's service account (by impersonation, with the
// admin's token), so the CertificateSigningRequests istiod creates carry its user name, as in a cluster.
func istiodKubeconfig(k *catest.Kube) []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: istiod
  user:
    token: %q
    as: %s
    as-groups: [system:serviceaccounts, "system:serviceaccounts:istio-system", system:authenticated]
contexts:
- name: test
  context: {cluster: test, user: istiod}
current-context: test
`, k.URL, k.CAFile, k.Config.BearerToken, kubesigner.DefaultRequester)
}

// servingCert is a self-signed certificate for istiod at 127.0.0.1 (and its in-cluster name), which the
// agent trusts as istiod's root.
func servingCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "istiod"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		DNSNames:    []string{"istiod.istio-system.svc"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// httpOK is a readiness probe: a GET of url must answer 200.
func httpOK(url string) func() error {
	c := &http.Client{Timeout: 2 * time.Second}
	return func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
		}
		return nil
	}
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

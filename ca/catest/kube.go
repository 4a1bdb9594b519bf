package catest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/internal/testproc"
)

// KubeIssuer is the service-account token issuer of the test cluster.
const KubeIssuer = "https://kubernetes.default.svc.cluster.local"

// Kube is a real etcd and kube-apiserver on loopback.
type Kube struct {
	// Config is an admin (system:masters) client configuration; Client uses it.
	Config *rest.Config
	Client kubernetes.Interface
	// Dir holds the cluster's files: kubeconfig, certs/, logs.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig.
	Kubeconfig string
	// CAFile verifies the API server's serving certificate.
	CAFile string
	// URL is the API server's address, https://127.0.0.1:<port>.
	URL string

	procs []*testproc.Process
}

var (
	sharedKube     *Kube
	sharedKubeErr  error
	sharedKubeOnce sync.Once
	stoppers       []func()
	stoppersMu     sync.Mutex
)

// Main runs a test binary's tests and then stops the servers that helpers shared between its tests. Use it
// from TestMain: func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	stoppersMu.Lock()
	defer stoppersMu.Unlock()
	for i := len(stoppers) - 1; i >= 0; i-- {
		stoppers[i]()
	}
	return code
}

// AtExit registers f to run when Main returns.
func AtExit(f func()) {
	stoppersMu.Lock()
	stoppers = append(stoppers, f)
	stoppersMu.Unlock()
}

// SharedKube returns one cluster for the whole test binary, started on first use; the package's TestMain
// must call Main so it is stopped. Give each test its own namespace with (*Kube).Namespace.
func SharedKube(tb testing.TB) *Kube {
	tb.Helper()
	apiserver, etcd := Binary(tb, "kube-apiserver"), Binary(tb, "etcd")
	sharedKubeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meshca-kube-")
		if err != nil {
			sharedKubeErr = err
			return
		}
		sharedKube, sharedKubeErr = startKube(dir, apiserver, etcd, nil)
		if sharedKubeErr == nil {
			AtExit(func() { sharedKube.Stop(); os.RemoveAll(dir) })
		}
	})
	if sharedKubeErr != nil {
		tb.Fatalf("catest: starting kube-apiserver: %v", sharedKubeErr)
	}
	return sharedKube
}

// StartKube starts a cluster of the test's own, stopped in Cleanup. extraArgs go to kube-apiserver.
func StartKube(tb testing.TB, extraArgs ...string) *Kube {
	tb.Helper()
	apiserver, etcd := Binary(tb, "kube-apiserver"), Binary(tb, "etcd")
	k, err := startKube(tb.TempDir(), apiserver, etcd, extraArgs)
	if err != nil {
		tb.Fatalf("catest: starting kube-apiserver: %v", err)
	}
	tb.Cleanup(k.Stop)
	return k
}

func startKube(dir, apiserver, etcd string, extraArgs []string) (*Kube, error) {
	k := &Kube{Dir: dir, CAFile: filepath.Join(dir, "certs", "apiserver.crt"),
		Kubeconfig: filepath.Join(dir, "kubeconfig")}
	token, err := writeKubeFiles(dir)
	if err != nil {
		return nil, err
	}
	etcdURL, err := k.startEtcd(etcd)
	if err != nil {
		k.Stop()
		return nil, err
	}
	if err := k.startAPIServer(apiserver, etcdURL, token, extraArgs); err != nil {
		k.Stop()
		return nil, err
	}
	k.Config = &rest.Config{Host: k.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: k.CAFile},
		QPS: 200, Burst: 400}
	if k.Client, err = kubernetes.NewForConfig(k.Config); err != nil {
		k.Stop()
		return nil, err
	}
	if err := k.writeKubeconfig(token); err != nil {
		k.Stop()
		return nil, err
	}
	return k, nil
}

// writeKubeFiles writes the service-account signing key and the admin token file under dir/certs and returns
// the admin token.
func writeKubeFiles(dir string) (string, error) {
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(filepath.Join(dir, "etcd"), 0o700); err != nil {
		return "", err
	}
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return "", err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err := os.WriteFile(filepath.Join(certs, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Bytes: x509.MarshalPKCS1PrivateKey(saKey)}), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(certs, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY",
		Bytes: pubDER}), 0o644); err != nil {
		return "", err
	}
	tokBytes := make([]byte, 24)
	rand.Read(tokBytes)
	token := hex.EncodeToString(tokBytes)
	if err := os.WriteFile(filepath.Join(certs, "tokens.csv"), []byte(token+",admin,admin-uid,system:masters\n"),
		0o600); err != nil {
		return "", err
	}
	return token, nil
}

// startEtcd starts etcd on free loopback ports and returns its client URL once it is healthy.
func (k *Kube) startEtcd(etcd string) (string, error) {
	etcdPort, peerPort := freePort(), freePort()
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	p, err := k.start("etcd", etcd, "--name", "meshca-test", "--data-dir", filepath.Join(k.Dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "meshca-test="+peerURL, "--unsafe-no-fsync", "--log-level", "warn",
		"--quota-backend-bytes", fmt.Sprint(512<<20))
	if err != nil {
		return "", err
	}
	if err := p.WaitReady(30*time.Second, 100*time.Millisecond, probeHTTP(etcdURL+"/health", "")); err != nil {
		return "", fmt.Errorf("etcd: %w", err)
	}
	return etcdURL, nil
}

// startAPIServer starts kube-apiserver on a free loopback port, sets k.URL and waits until it is ready.
func (k *Kube) startAPIServer(apiserver, etcdURL, token string, extraArgs []string) error {
	certs := filepath.Join(k.Dir, "certs")
	apiPort := freePort()
	args := []string{
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir=" + certs, "--etcd-servers=" + etcdURL,
		"--service-account-issuer=" + KubeIssuer,
		"--service-account-key-file=" + filepath.Join(certs, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(certs, "sa.key"),
		"--api-audiences=" + KubeIssuer,
		"--authorization-mode=RBAC", "--token-auth-file=" + filepath.Join(certs, "tokens.csv"),
		"--service-cluster-ip-range=10.96.0.0/24", "--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false", "--v=0",
	}
	p, err := k.start("apiserver", apiserver, append(args, extraArgs...)...)
	if err != nil {
		return err
	}
	k.URL = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	if err := p.WaitReady(90*time.Second, 100*time.Millisecond, probeHTTP(k.URL+"/readyz", token)); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return nil
}

// writeKubeconfig writes an admin kubeconfig for the cluster to k.Kubeconfig.
func (k *Kube) writeKubeconfig(token string) error {
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, k.URL, k.CAFile, token)
	return os.WriteFile(k.Kubeconfig, []byte(kc), 0o600)
}

// start starts bin with its output in <Dir>/<name>.log.
func (k *Kube) start(name, bin string, args ...string) (*testproc.Process, error) {
	p, err := testproc.Start(exec.Command(bin, args...), filepath.Join(k.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	k.procs = append(k.procs, p)
	return p, nil
}

// Stop kills the API server and etcd.
func (k *Kube) Stop() {
	for i := len(k.procs) - 1; i >= 0; i-- {
		k.procs[i].Kill()
	}
	k.procs = nil
}

// Namespace creates a namespace named after the test, deleted in Cleanup.
func (k *Kube) Namespace(tb testing.TB) string {
	tb.Helper()
	name := strings.ToLower(tb.Name())
	name = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, name)
	suffix := make([]byte, 3)
	rand.Read(suffix)
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-") + "-" + hex.EncodeToString(suffix)
	ctx := context.Background()
	if _, err := k.Client.CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("catest: creating namespace %s: %v", name, err)
	}
	tb.Cleanup(func() { _ = k.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return name
}

// probeHTTP returns a readiness probe: a GET of url, with token as bearer when set, must answer 200.
func probeHTTP(url, token string) func() error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // readiness probe only; clients verify
	return func() error {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
}

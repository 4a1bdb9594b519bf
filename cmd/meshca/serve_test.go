package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
)

func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }

// TestServeInCluster runs `meshca serve --config` as the shipped base configuration does, against a real
// kube-apiserver and as meshca's own service account (the shipped RBAC): the CA comes from the cacerts Secret,
// tokens are checked by TokenReview, and the roots are published to istio-ca-root-cert.
func TestServeInCluster(t *testing.T) {
	k := catest.SharedKube(t)
	ctx := context.Background()
	dir := t.TempDir()
	kubeconfig := meshcaKubeconfig(t, k, dir) // also creates meshca's namespace and RBAC

	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cacerts", Namespace: "istio-system"},
		Data: map[string][]byte{file.CACertFile: g.CertPEM, file.CAKeyFile: g.KeyPEM, file.RootCertFile: g.RootPEM,
			file.CertChainFile: append(append([]byte{}, g.CertPEM...), g.RootPEM...)}}
	if _, err := k.Client.CoreV1().Secrets("istio-system").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Client.CoreV1().Secrets("istio-system").Delete(ctx, "cacerts", metav1.DeleteOptions{}) })

	grpcPort, httpPort := catest.FreePort(t), catest.FreePort(t)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`
issuance: {trustDomain: cluster.local}
server: {grpcAddr: "127.0.0.1:%d", httpAddr: "127.0.0.1:%d", ipAddresses: ["127.0.0.1"]}
authn: {issuers: []}
kubernetes:
  kubeconfig: %q
  tokenReview: {}
  trustedNodeAccounts: [istio-system/ztunnel]
trustBundle: {leaseNamespace: istio-system, pollInterval: 200ms}
backends:
  - name: cacerts
    file: {secret: istio-system/cacerts}
`, grpcPort, httpPort, kubeconfig)), 0o600); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, []string{"serve", "--config", config, "--log-format", "text"}, io.Discard, testLog{t})
	}()
	t.Cleanup(func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("meshca serve exited with %d", code)
		}
	})

	ns := k.Namespace(t)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sleep"}}
	if _, err := k.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := k.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "sleep", &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{authn.DefaultAudience}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(g.Root)
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", grpcPort),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	csrPEM, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/"+ns+"/sa/sleep")
	var resp *pb.IstioCertificateResponse
	deadline := time.Now().Add(30 * time.Second)
	for {
		md := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tr.Status.Token,
			"clusterid", authn.DefaultClusterID)
		rctx, cancel := context.WithTimeout(md, 5*time.Second)
		resp, err = pb.NewIstioCertificateServiceClient(conn).CreateCertificate(rctx,
			&pb.IstioCertificateRequest{Csr: string(csrPEM)})
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // meshca is still starting
	}
	if err != nil {
		t.Fatalf("CreateCertificate with a TokenRequest token: %v", err)
	}
	block, _ := pem.Decode([]byte(resp.CertChain[0]))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if want := "spiffe://cluster.local/ns/" + ns + "/sa/sleep"; len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		t.Fatalf("issued %v, want %s", leaf.URIs, want)
	}
	if err := leaf.CheckSignatureFrom(g.Intermediate); err != nil {
		t.Fatalf("not signed by the cacerts Secret's CA: %v", err)
	}

	// The leader publishes the root to every namespace.
	for {
		cm, err := k.Client.CoreV1().ConfigMaps(ns).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
		if err == nil && cm.Data["root-cert.pem"] == string(g.RootPEM) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("istio-ca-root-cert not published in %s: %v", ns, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testLog sends meshca's log lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// meshcaKubeconfig writes a kubeconfig into dir that acts as meshca's service account with the shipped RBAC,
// like the in-cluster config in a real pod, and returns its path.
func meshcaKubeconfig(t *testing.T, k *catest.Kube, dir string) string {
	t.Helper()
	asMeshca := catest.MeshcaRBAC(t, k)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	groups := `["` + strings.Join(asMeshca.Impersonate.Groups, `","`) + `"]`
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority: %q}}]
users: [{name: meshca, user: {token: %q, as: %q, as-groups: %s}}]
contexts: [{name: test, context: {cluster: test, user: meshca}}]
current-context: test
`, k.URL, k.CAFile, k.Config.BearerToken, asMeshca.Impersonate.UserName, groups)), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

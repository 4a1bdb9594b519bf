package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/backends/file"
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
expiry: {scan: {kubernetes: {}}}
backends:
  - name: cacerts
    file: {secret: istio-system/cacerts}
`, grpcPort, httpPort, kubeconfig)), 0o600); err != nil {
		t.Fatal(err)
	}
	serveConfig(t, config)
	ns := k.Namespace(t)
	leaf := issueInCluster(t, k, ns, grpcPort, g.Root)[0]
	if want := "spiffe://cluster.local/ns/" + ns + "/sa/sleep"; len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		t.Fatalf("issued %v, want %s", leaf.URIs, want)
	}
	if err := leaf.CheckSignatureFrom(g.Intermediate); err != nil {
		t.Fatalf("not signed by the cacerts Secret's CA: %v", err)
	}

	// The leader publishes the root to every namespace.
	catest.Eventually(t, 30*time.Second, "istio-ca-root-cert published in "+ns, func() error {
		cm, err := k.Client.CoreV1().ConfigMaps(ns).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data["root-cert.pem"] != string(g.RootPEM) {
			return errors.New("holds another root")
		}
		return nil
	})

	// The expiry scanner follows the cacerts Secret and the published ConfigMaps with the base RBAC; the
	// labelled Secrets it may not list (no components/expiry-scanner here) do not stop the CA.
	for _, want := range []string{
		`meshca_scanned_certificate_expiry_timestamp_seconds{ca="true",key="root-cert.pem",name="cacerts",` +
			`namespace="istio-system",`,
		`meshca_scanned_certificate_expiry_timestamp_seconds{ca="true",key="root-cert.pem",` +
			`name="istio-ca-root-cert",namespace="` + ns + `",`,
	} {
		catest.Eventually(t, 30*time.Second, "/metrics with "+want, func() error {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort))
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), want) {
				return errors.New("not yet in /metrics")
			}
			return nil
		})
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

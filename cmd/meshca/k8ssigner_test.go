package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/manifests"
)

// The k8sSigner section decodes strictly and every problem names its key, including a signer routed to a
// backend that is not configured.
func TestK8sSignerConfig(t *testing.T) {
	base := "issuance: {trustDomain: cluster.local}\n" + okServer
	c, err := loadBytes([]byte(base + "k8sSigner: {signers: [{name: meshca.io/workloads, backends: [cacerts]}], " +
		"leaseNamespace: istio-system, pollInterval: 10s}\n"))
	if err != nil {
		t.Fatalf("a valid k8sSigner section is refused: %v", err)
	}
	if s := c.K8sSigner; s == nil || s.Signers[0].Backends[0] != "cacerts" || s.PollInterval.String() != "10s" ||
		!c.needsKube() {
		t.Fatalf("decoded %+v; want the signer, its backend and a Kubernetes client", c.K8sSigner)
	}
	_, err = loadBytes([]byte(base + "k8sSigner: {signers: [{name: kubernetes.io/x, backends: [vualt]}], " +
		"requesters: [istiod], workrs: 2}\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"k8sSigner.workrs: unknown key; did you mean workers?"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	_, err = loadBytes([]byte(base + "k8sSigner: {signers: [{name: kubernetes.io/x, backends: [vualt]}], " +
		"requesters: [istiod]}\n"))
	for _, want := range []string{"k8sSigner.signers[0].name:", "k8sSigner.signers[0].backends[0]: no backend",
		"k8sSigner.requesters[0]:", "k8sSigner.leaseNamespace: required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// istiodCSRRBAC lets istiod's service account create and read CertificateSigningRequests, as its ClusterRole does.
const istiodCSRRBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: serve-test-istiod-csr}
rules:
  - apiGroups: ["certificates.k8s.io"]
    resources: ["certificatesigningrequests"]
    verbs: ["create", "get", "delete", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: serve-test-istiod-csr}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: serve-test-istiod-csr}
subjects: [{kind: ServiceAccount, name: istiod, namespace: istio-system}]
`

// `meshca serve` with a k8sSigner section signs istiod's approved CertificateSigningRequest, running as
// meshca's service account with the shipped RBAC (base and components/k8s-signer).
func TestServeSignsKubernetesCSRs(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver (scripts/testbins.sh); skipped under -short")
	}
	k := catest.SharedKube(t)
	ctx := context.Background()
	for _, doc := range [][]byte{manifests.K8sSignerRBAC, []byte(istiodCSRRBAC)} {
		objs, err := catest.DecodeYAML(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := catest.Apply(ctx, k.Config, objs, catest.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	caDir, g := catest.FileCA(t)
	dir := t.TempDir()
	kubeconfig := meshcaKubeconfig(t, k, dir)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`
issuance: {trustDomain: cluster.local}
server: {grpcAddr: "127.0.0.1:%d", httpAddr: "127.0.0.1:%d", ipAddresses: ["127.0.0.1"]}
authn: {issuers: []}
kubernetes: {kubeconfig: %q, tokenReview: {}}
k8sSigner: {signers: [{name: meshca.io/workloads}], leaseNamespace: istio-system, retryPeriod: 500ms}
backends: [{name: cacerts, file: {dir: %q}}]
`, catest.FreePort(t), catest.FreePort(t), kubeconfig, caDir)), 0o600); err != nil {
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

	istiodCfg := rest.CopyConfig(k.Config)
	istiodCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:istio-system:istiod",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:istio-system", "system:authenticated"}}
	istiod, err := kubernetes.NewForConfig(istiodCfg)
	if err != nil {
		t.Fatal(err)
	}
	const id = "spiffe://cluster.local/ns/shop/sa/cart"
	csrPEM, _ := catest.WorkloadCSR(t, id)
	var created *certv1.CertificateSigningRequest
	catest.Eventually(t, 30*time.Second, "creating the CSR as istiod", func() error {
		created, err = istiod.CertificatesV1().CertificateSigningRequests().Create(ctx,
			&certv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "csr-workload-"},
				Spec: certv1.CertificateSigningRequestSpec{Request: csrPEM, SignerName: "meshca.io/workloads",
					Usages: []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageKeyEncipherment,
						certv1.UsageServerAuth, certv1.UsageClientAuth}}}, metav1.CreateOptions{})
		return err // RBAC may not be in force yet
	})
	csrs := k.Client.CertificatesV1().CertificateSigningRequests()
	t.Cleanup(func() { _ = csrs.Delete(context.Background(), created.Name, metav1.DeleteOptions{}) })
	created.Status.Conditions = append(created.Status.Conditions, certv1.CertificateSigningRequestCondition{
		Type: certv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Test"})
	if _, err := csrs.UpdateApproval(ctx, created.Name, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var chain []byte
	catest.Eventually(t, 60*time.Second, "meshca serve signs the CSR", func() error {
		got, err := csrs.Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if chain = got.Status.Certificate; len(chain) == 0 {
			return fmt.Errorf("not signed; conditions %v", got.Status.Conditions)
		}
		return nil
	})
	block, _ := pem.Decode(chain)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id || leaf.CheckSignatureFrom(g.Intermediate) != nil {
		t.Fatalf("issued %v by %s; want %s by the file CA", leaf.URIs, leaf.Issuer, id)
	}
}

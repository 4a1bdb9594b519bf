package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/kubestore"
)

// In a cluster, with the shipped RBAC: the revocation state lives in the meshca-revocations Secret (issuances
// reach its inventory), and the istio-ca-crl ConfigMap of every namespace holds a current CRL for each CA of
// the chain, the intermediate's signed by meshca and the root's from the cacerts Secret's ca-crl.pem.
func TestServeInClusterPublishesCRLs(t *testing.T) {
	k := catest.SharedKube(t)
	ctx := context.Background()
	dir := t.TempDir()
	kubeconfig := meshcaKubeconfig(t, k, dir) // also creates meshca's namespace and RBAC
	const cacerts = "cacerts"                 // the name the shipped RBAC allows
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local", RootCRL: true})
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: cacerts, Namespace: catest.MeshcaNamespace},
		Data: map[string][]byte{file.CACertFile: g.CertPEM, file.CAKeyFile: g.KeyPEM, file.RootCertFile: g.RootPEM,
			file.CertChainFile: append(append([]byte{}, g.CertPEM...), g.RootPEM...), file.CRLFile: g.CRLPEM}}
	if _, err := k.Client.CoreV1().Secrets(catest.MeshcaNamespace).Create(ctx, secret,
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		k.Client.CoreV1().Secrets(catest.MeshcaNamespace).Delete(ctx, cacerts, metav1.DeleteOptions{})
	})
	grpcPort, httpPort := catest.FreePort(t), catest.FreePort(t)
	config := filepath.Join(dir, "config.yaml")
	writeFile(t, config, fmt.Sprintf(`
issuance: {trustDomain: cluster.local}
server: {grpcAddr: "127.0.0.1:%d", httpAddr: "127.0.0.1:%d", ipAddresses: ["127.0.0.1"]}
authn: {issuers: []}
kubernetes: {kubeconfig: %q, tokenReview: {}}
adminTokenFile: %q
crl:
  secret: {namespace: istio-system}
  configMaps: {leaseNamespace: istio-system}
  flushInterval: 200ms
  interval: 1s
  admin: {addr: "127.0.0.1:%d"}
backends:
  - name: cacerts
    file: {secret: istio-system/%s}
`, grpcPort, httpPort, kubeconfig, filepath.Join(dir, "admin-token"), catest.FreePort(t), cacerts))
	// The operator creates the empty state Secret: the shipped RBAC grants meshca no secrets/create.
	if _, err := k.Client.CoreV1().Secrets(catest.MeshcaNamespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "meshca-revocations"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		k.Client.CoreV1().Secrets(catest.MeshcaNamespace).Delete(ctx, "meshca-revocations", metav1.DeleteOptions{})
	})
	serveConfig(t, config)
	ns := k.Namespace(t)
	leaf := issueInCluster(t, k, ns, grpcPort, g.Root)[0]

	catest.Eventually(t, 20*time.Second, "the issuance in the Secret's inventory", func() error {
		s, err := k.Client.CoreV1().Secrets(catest.MeshcaNamespace).Get(ctx, "meshca-revocations",
			metav1.GetOptions{})
		if err != nil {
			return err
		}
		st, err := kubestore.Decode(s.Data[kubestore.DataKey])
		if err != nil {
			return err
		}
		for _, rec := range st.Issued {
			if rec.Serial.Cmp(leaf.SerialNumber) == 0 {
				return nil
			}
		}
		return fmt.Errorf("serial %x not among %d records", leaf.SerialNumber, len(st.Issued))
	})
	catest.Eventually(t, 20*time.Second, "istio-ca-crl covering the chain in "+ns, func() error {
		cm, err := k.Client.CoreV1().ConfigMaps(ns).Get(ctx, "istio-ca-crl", metav1.GetOptions{})
		if err != nil {
			return err
		}
		lists, err := crl.ParseBundle([]byte(cm.Data["ca-crl.pem"]))
		if err != nil {
			return err
		}
		_, err = crl.Check([]*x509.Certificate{g.Intermediate, g.Root}, lists, time.Now())
		return err
	})
}

// parseChain parses the PEM certificates of a CreateCertificate response.
func parseChain(t *testing.T, pems []string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, p := range pems {
		certs, err := backends.ParseCertificates([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, certs...)
	}
	return out
}

// serveConfig runs meshca serve --config config until the test ends, logging to the test log.
func serveConfig(t *testing.T, config string) {
	t.Helper()
	sctx, stop := context.WithCancel(context.Background())
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
}

// issueInCluster creates the service account sleep in ns and gets it a certificate from the meshca at grpcPort
// with a TokenRequest token, retrying while meshca starts. It returns the chain.
func issueInCluster(t *testing.T, k *catest.Kube, ns string, grpcPort int, root *x509.Certificate) []*x509.Certificate {
	t.Helper()
	ctx := context.Background()
	if _, err := k.Client.CoreV1().ServiceAccounts(ns).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sleep"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := k.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "sleep", &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{authn.DefaultAudience}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", grpcPort),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	csrPEM, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/"+ns+"/sa/sleep")
	var resp *pb.IstioCertificateResponse
	catest.Eventually(t, 30*time.Second, "a certificate issued with a TokenRequest token", func() error {
		rctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization",
			"Bearer "+tr.Status.Token, "clusterid", authn.DefaultClusterID), 5*time.Second)
		defer cancel()
		resp, err = pb.NewIstioCertificateServiceClient(conn).CreateCertificate(rctx,
			&pb.IstioCertificateRequest{Csr: string(csrPEM)})
		return err
	})
	return parseChain(t, resp.CertChain)
}

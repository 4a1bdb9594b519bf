package trustbundle_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/trustbundle"
)

var _ trustbundle.Source = (*ca.Issuer)(nil)

// The whole path of a root rotation: the cacerts Secret changes, the file backend (reading the Secret as meshca's
// service account) activates it, and the publisher, fed by the issuer, updates the ClusterTrustBundle and the
// ConfigMaps to the same roots /roots.pem serves.
func TestRotationFromTheCacertsSecretReachesEveryTarget(t *testing.T) {
	k := catest.SharedKube(t)
	f := newFixture(t, k)
	f.namespace(t, true)
	secrets := k.Client.CoreV1().Secrets(catest.MeshcaNamespace)
	t.Cleanup(func() { _ = secrets.Delete(context.Background(), "cacerts", metav1.DeleteOptions{}) })
	g1 := generateCA(t)
	if _, err := secrets.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cacerts"},
		Data: cacertsData(g1, g1.RootPEM)}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(f.rbac)
	if err != nil {
		t.Fatal(err)
	}
	backend, err := file.New(context.Background(), file.Config{
		Secret: catest.MeshcaNamespace + "/cacerts",
		Kube:   client,
		Logger: catest.DiscardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	m := catest.StartMeshca(t, catest.MeshcaOptions{Backends: []ca.NamedBackend{{Name: "file", Backend: backend}}})
	r := f.start(t, "replica-0", func(c *trustbundle.Config) { c.Source = m.Issuer })

	check := func(roots ...*x509.Certificate) func() error {
		want := encode(t, roots...)
		return func() error {
			if err := f.allHold(r.p, want)(); err != nil {
				return err
			}
			served := httpRoots(t, "http://"+m.HTTPAddr+"/roots.pem")
			if !sameCertificates(served, roots) {
				return fmt.Errorf("/roots.pem serves %d roots, not the %d expected", len(served), len(roots))
			}
			return nil
		}
	}
	catest.Eventually(t, 20*time.Second, "the Secret's root published", check(g1.Root))

	// Step 1 of a root rotation: a new root and intermediate, both roots trusted.
	g2 := generateCA(t)
	both := append(append([]byte{}, g1.RootPEM...), g2.RootPEM...)
	updateSecret(t, secrets, cacertsData(g2, both))
	took := catest.Eventually(t, 15*time.Second, "both roots published", check(g1.Root, g2.Root))
	t.Logf("Secret update to every target (both roots) in %s", took.Round(time.Millisecond))
	// Step 2: the old root is withdrawn.
	updateSecret(t, secrets, cacertsData(g2, g2.RootPEM))
	catest.Eventually(t, 15*time.Second, "old root withdrawn", check(g2.Root))
}

func generateCA(t *testing.T) *file.Generated {
	t.Helper()
	g, err := file.Generate(file.GenerateOptions{Organization: catest.TrustDomain})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func cacertsData(g *file.Generated, roots []byte) map[string][]byte {
	return map[string][]byte{
		file.CACertFile:    g.CertPEM,
		file.CAKeyFile:     g.KeyPEM,
		file.CertChainFile: append(append([]byte{}, g.CertPEM...), g.RootPEM...),
		file.RootCertFile:  roots,
	}
}

func updateSecret(t *testing.T, secrets interface {
	Get(context.Context, string, metav1.GetOptions) (*corev1.Secret, error)
	Update(context.Context, *corev1.Secret, metav1.UpdateOptions) (*corev1.Secret, error)
}, data map[string][]byte) {
	t.Helper()
	s, err := secrets.Get(context.Background(), "cacerts", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data = data
	if _, err := secrets.Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func httpRoots(t *testing.T, url string) []*x509.Certificate {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return decode(t, b)
}

// sameCertificates reports whether a and b hold the same certificates, in any order.
func sameCertificates(a, b []*x509.Certificate) bool {
	has := func(set []*x509.Certificate, c *x509.Certificate) bool {
		return slices.ContainsFunc(set, func(x *x509.Certificate) bool { return x.Equal(c) })
	}
	for _, c := range a {
		if !has(b, c) {
			return false
		}
	}
	for _, c := range b {
		if !has(a, c) {
			return false
		}
	}
	return true
}

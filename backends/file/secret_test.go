package file_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
)

func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }

func generate(t *testing.T) *file.Generated {
	t.Helper()
	g, err := file.Generate(file.GenerateOptions{Organization: catest.TrustDomain})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func cacertsData(g *file.Generated) map[string][]byte {
	return map[string][]byte{
		file.CACertFile:    g.CertPEM,
		file.CAKeyFile:     g.KeyPEM,
		file.CertChainFile: bytes.Join([][]byte{g.CertPEM, g.RootPEM}, nil),
		file.RootCertFile:  g.RootPEM,
	}
}

// sign issues a workload certificate and returns its chain.
func sign(t *testing.T, b *file.Backend) []*x509.Certificate {
	t.Helper()
	key := catest.ECKey(t)
	id, _ := url.Parse("spiffe://cluster.local/ns/default/sa/app")
	resp, err := b.Sign(context.Background(), &backends.SignRequest{PublicKey: key.Public(), URIs: []*url.URL{id},
		TTL: time.Hour})
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return resp.Chain
}

// chainsTo reports whether the issued chain verifies to root.
func chainsTo(chain []*x509.Certificate, root *x509.Certificate) error {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inters.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// secretClient returns the client the backend reads the Secret with: meshca's service account with the RBAC
// of manifests/base, which may read istio-system/cacerts and no other Secret.
func secretClient(t *testing.T, k *catest.Kube) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(catest.MeshcaRBAC(t, k))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const cacerts = "cacerts" // the Secret name the shipped RBAC allows

func TestSecretSource(t *testing.T) {
	k := catest.SharedKube(t)
	client := secretClient(t, k)
	ns := catest.MeshcaNamespace
	secrets := k.Client.CoreV1().Secrets(ns)
	t.Cleanup(func() { _ = secrets.Delete(context.Background(), cacerts, metav1.DeleteOptions{}) })
	g1 := generate(t)
	newBackend := func(reg prometheus.Registerer, log *slog.Logger) (*file.Backend, error) {
		return file.New(context.Background(), file.Config{Secret: ns + "/" + cacerts, Kube: client,
			SecretSyncTimeout: 3 * time.Second, Registerer: reg, Logger: log})
	}

	t.Run("a missing Secret fails start-up", func(t *testing.T) {
		_, err := newBackend(nil, catest.DiscardLogger())
		if !errors.Is(err, file.ErrInvalidCA) {
			t.Fatalf("New: %v, want ErrInvalidCA", err)
		}
		t.Logf("error: %v", err)
	})
	t.Run("a broken Secret fails start-up", func(t *testing.T) {
		bad := cacertsData(g1)
		bad[file.CAKeyFile] = generate(t).KeyPEM
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: cacerts}, Data: bad}
		if _, err := secrets.Create(context.Background(), secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := newBackend(nil, catest.DiscardLogger())
		if !errors.Is(err, file.ErrInvalidCA) {
			t.Fatalf("New: %v, want ErrInvalidCA", err)
		}
		t.Logf("error: %v", err)
		if err := secrets.Delete(context.Background(), cacerts, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a Secret meshca may not read fails start-up with a hint", func(t *testing.T) {
		_, err := file.New(context.Background(), file.Config{Secret: ns + "/other", Kube: client,
			SecretSyncTimeout: time.Second, Logger: catest.DiscardLogger()})
		if err == nil || !strings.Contains(err.Error(), "RBAC") {
			t.Fatalf("New: %v, want an error that points at RBAC", err)
		}
	})

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: cacerts}, Data: cacertsData(g1)}
	if _, err := secrets.Create(context.Background(), sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// An unrelated Secret in the same namespace must not disturb the watch.
	if _, err := secrets.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Data: map[string][]byte{file.CACertFile: []byte("junk")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = secrets.Delete(context.Background(), "other", metav1.DeleteOptions{}) })
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	start := time.Now()
	b, err := newBackend(reg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	t.Logf("loaded the CA from the Secret in %s", time.Since(start).Round(time.Millisecond))
	reloads := func(result string) float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if mf.GetName() == "meshca_file_ca_reloads_total" && m.GetLabel()[0].GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}

	if err := chainsTo(sign(t, b), g1.Root); err != nil {
		t.Fatalf("certificate does not chain to the Secret's root: %v", err)
	}

	g2 := generate(t)
	t.Run("an updated Secret activates the new CA", func(t *testing.T) {
		sec, err := secrets.Get(context.Background(), cacerts, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sec.Data = cacertsData(g2)
		start := time.Now()
		if _, err := secrets.Update(context.Background(), sec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		catest.Eventually(t, 10*time.Second, "new CA active", func() error { return chainsTo(sign(t, b), g2.Root) })
		t.Logf("new CA active %s after the Secret update was sent", time.Since(start).Round(100*time.Microsecond))
		if n := reloads("success"); n != 1 {
			t.Errorf("successful reloads = %v, want 1", n)
		}
	})

	broken := []struct {
		name   string
		mutate func(map[string][]byte)
	}{
		{"a key that does not match the certificate", func(d map[string][]byte) { d[file.CAKeyFile] = g1.KeyPEM }},
		{"a missing key", func(d map[string][]byte) { delete(d, file.CAKeyFile) }},
		{"a root the CA does not chain to", func(d map[string][]byte) {
			d[file.RootCertFile] = g1.RootPEM
			d[file.CertChainFile] = g2.CertPEM
		}},
	}
	for i, bc := range broken {
		t.Run("an update with "+bc.name+" is refused and the CA stays", func(t *testing.T) {
			sec, err := secrets.Get(context.Background(), cacerts, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sec.Data = cacertsData(g2)
			bc.mutate(sec.Data)
			if _, err := secrets.Update(context.Background(), sec, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			catest.Eventually(t, 10*time.Second, "refusal counted", func() error {
				if n := reloads("error"); n != float64(i+1) {
					return fmt.Errorf("failed reloads = %v, want %d", n, i+1)
				}
				return nil
			})
			if err := chainsTo(sign(t, b), g2.Root); err != nil {
				t.Fatalf("after a broken update, certificates no longer chain to the active CA: %v", err)
			}
		})
	}

	t.Run("a deleted Secret is refused and the CA stays", func(t *testing.T) {
		before := reloads("error")
		if err := secrets.Delete(context.Background(), cacerts, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		catest.Eventually(t, 10*time.Second, "refusal counted", func() error {
			if n := reloads("error"); n != before+1 {
				return fmt.Errorf("failed reloads = %v, want %v", n, before+1)
			}
			return nil
		})
		if err := chainsTo(sign(t, b), g2.Root); err != nil {
			t.Fatalf("after deletion, certificates no longer chain to the active CA: %v", err)
		}
	})

	t.Run("a recreated Secret is loaded", func(t *testing.T) {
		g3 := generate(t)
		if _, err := secrets.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: cacerts},
			Data: cacertsData(g3)}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		catest.Eventually(t, 10*time.Second, "recreated CA active", func() error {
			return chainsTo(sign(t, b), g3.Root)
		})
	})

	b.Close() // no more log writes
	for _, g := range []*file.Generated{g1, g2} {
		if bytes.Contains(logs.Bytes(), g.KeyPEM) || bytes.Contains(logs.Bytes(), []byte("PRIVATE KEY")) {
			t.Fatal("the logs hold private key material")
		}
	}
}

func TestDirSourceStillReloads(t *testing.T) {
	dir, g1 := catest.FileCA(t)
	reg := prometheus.NewRegistry()
	b := catest.FileBackend(t, dir, reg)
	if err := chainsTo(sign(t, b), g1.Root); err != nil {
		t.Fatal(err)
	}
	g2 := generate(t)
	if err := g2.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 5*time.Second, "new CA from the directory", func() error {
		return chainsTo(sign(t, b), g2.Root)
	})
	if err := os.WriteFile(dir+"/"+file.CAKeyFile, g1.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reload(); !errors.Is(err, file.ErrInvalidCA) {
		t.Fatalf("Reload of a mismatched key: %v, want ErrInvalidCA", err)
	}
	if err := chainsTo(sign(t, b), g2.Root); err != nil {
		t.Fatalf("the refused set replaced the active CA: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	kube := &kubernetes.Clientset{}
	tests := []struct {
		name string
		cfg  file.Config
		ok   bool
	}{
		{name: "a directory is enough", cfg: file.Config{Dir: "/etc/cacerts"}, ok: true},
		{name: "a Secret with a client is enough", cfg: file.Config{Secret: "istio-system/cacerts", Kube: kube},
			ok: true},
		{name: "neither is refused", cfg: file.Config{}},
		{name: "both are refused", cfg: file.Config{Dir: "/etc/cacerts", Secret: "istio-system/cacerts", Kube: kube}},
		{name: "a Secret without a namespace is refused", cfg: file.Config{Secret: "cacerts", Kube: kube}},
		// The client is wiring, not configuration: a config file can name a Secret; New needs the client.
		{name: "a Secret without a client is valid configuration", cfg: file.Config{Secret: "istio-system/cacerts"},
			ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if b, err := file.New(context.Background(), file.Config{Secret: "istio-system/cacerts"}); err == nil {
		b.Close()
		t.Fatal("New with a Secret and no Kubernetes client succeeded")
	}
}

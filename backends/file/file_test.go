package file_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
)

func generateWith(t *testing.T, opts file.GenerateOptions) *file.Generated {
	t.Helper()
	g, err := file.Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func writeDir(t *testing.T, g *file.Generated) string {
	t.Helper()
	dir := t.TempDir()
	if err := g.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestNewRefusesBrokenCAs(t *testing.T) {
	g := generate(t)
	other := generate(t)
	expired := generateWith(t, file.GenerateOptions{Now: time.Now().Add(-48 * time.Hour),
		IntermediateTTL: 24 * time.Hour})
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	notCA := func() []byte { // a leaf certificate with its key, put where the CA belongs
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, g.Intermediate, leafKey.Public(), g.IntermediateKey)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}()
	leafKeyDER, _ := x509.MarshalPKCS8PrivateKey(leafKey)
	tests := []struct {
		name   string
		change map[string][]byte // file name -> contents; nil contents deletes the file
	}{
		{"the key does not match the certificate", map[string][]byte{file.CAKeyFile: other.KeyPEM}},
		{"the CA certificate is not a CA", map[string][]byte{file.CACertFile: notCA,
			file.CAKeyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: leafKeyDER})}},
		{"the CA certificate expired", map[string][]byte{file.CACertFile: expired.CertPEM,
			file.CAKeyFile: expired.KeyPEM, file.RootCertFile: expired.RootPEM, file.CertChainFile: expired.CertPEM}},
		{"the chain does not reach root-cert.pem", map[string][]byte{file.RootCertFile: other.RootPEM}},
		{"root-cert.pem is missing", map[string][]byte{file.RootCertFile: nil}},
		{"ca-key.pem is missing", map[string][]byte{file.CAKeyFile: nil}},
		{"ca-cert.pem is garbage", map[string][]byte{
			file.CACertFile: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeDir(t, g)
			for name, b := range tt.change {
				if b == nil {
					os.Remove(filepath.Join(dir, name))
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			b, err := file.New(context.Background(), file.Config{Dir: dir, Logger: catest.DiscardLogger()})
			if !errors.Is(err, file.ErrInvalidCA) {
				if b != nil {
					b.Close()
				}
				t.Fatalf("New: %v, want ErrInvalidCA", err)
			}
		})
	}
}

func TestBrokenReloadKeepsTheActiveCA(t *testing.T) {
	g := generate(t)
	dir := writeDir(t, g)
	reg := prometheus.NewRegistry()
	b := catest.FileBackend(t, dir, reg)
	other := generate(t)
	if err := os.WriteFile(filepath.Join(dir, file.CAKeyFile), other.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reload(); !errors.Is(err, file.ErrInvalidCA) {
		t.Fatalf("Reload of a mismatched key: %v, want ErrInvalidCA", err)
	}
	key := catest.ECKey(t)
	resp, err := b.Sign(context.Background(), &backends.SignRequest{PublicKey: key.Public(),
		URIs: []*url.URL{mustURL(t, "spiffe://cluster.local/ns/a/sa/b")}, TTL: time.Hour})
	if err != nil {
		t.Fatalf("signing after a refused reload: %v", err)
	}
	if !resp.Chain[1].Equal(g.Intermediate) {
		t.Fatal("a refused reload replaced the active CA")
	}
	mfs, _ := reg.Gather()
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "meshca_file_ca_reloads_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "error" && m.GetCounter().GetValue() >= 1 {
					found = true
				}
			}
		}
	}
	if !found {
		t.Error(`meshca_file_ca_reloads_total{result="error"} was not counted`)
	}
}

// TestHotReloadUnderLoad replaces the CA files while workers issue certificates over gRPC, first by rewriting
// the files in place, then by a Kubernetes-style atomic symlink swap (..data -> a new timestamped directory):
// no request may fail, and new requests must move to each new intermediate.
func TestHotReloadUnderLoad(t *testing.T) {
	root := generate(t)
	// Kubernetes mounts a Secret as files that are symlinks into ..data, itself a symlink to a timestamped dir.
	mount := t.TempDir()
	swap := func(g *file.Generated, n int) {
		ts := filepath.Join(mount, fmt.Sprintf("..2026_11_24_%d", n))
		if err := g.WriteDir(ts); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(mount, "..data_tmp")
		os.Remove(tmp)
		if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(mount, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	swap(root, 0)
	for _, name := range []string{file.CACertFile, file.CAKeyFile, file.CertChainFile, file.RootCertFile} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(mount, name)); err != nil {
			t.Fatal(err)
		}
	}
	plain := writeDir(t, root)

	for _, mode := range []string{"files rewritten in place", "kubernetes symlink swap"} {
		t.Run(mode, func(t *testing.T) {
			dir := plain
			if mode == "kubernetes symlink swap" {
				dir = mount
			}
			reg := prometheus.NewRegistry()
			m := catest.StartMeshca(t, catest.MeshcaOptions{Registry: reg,
				Limits:   ca.Limits{PerCallerRate: -1}, // a load test of reloads: a few callers, many requests
				Backends: []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, reg)}}})
			conn := m.Dial(t)
			client := pb.NewIstioCertificateServiceClient(conn)
			tok := m.Token(t, "default", "sleep")
			csrPEM, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/sleep")

			var ok, failed atomic.Int64
			var mu sync.Mutex
			seen := map[string]bool{} // intermediates that signed
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						rctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
						resp, err := client.CreateCertificate(rctx, &pb.IstioCertificateRequest{Csr: string(csrPEM)})
						if err != nil {
							failed.Add(1)
							t.Errorf("request failed during reload: %v", err)
							continue
						}
						block, _ := pem.Decode([]byte(resp.CertChain[1]))
						mu.Lock()
						seen[string(block.Bytes)] = true
						mu.Unlock()
						ok.Add(1)
					}
				}()
			}
			var rotated []*file.Generated
			for n := 1; n <= 3; n++ {
				time.Sleep(150 * time.Millisecond)
				g := generateWith(t, file.GenerateOptions{Root: root.Root, RootKey: root.RootKey})
				rotated = append(rotated, g)
				if mode == "kubernetes symlink swap" {
					swap(g, n)
				} else if err := g.WriteDir(dir); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(5 * time.Second)
				for {
					mu.Lock()
					done := seen[string(g.Intermediate.Raw)]
					mu.Unlock()
					if done {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("rotation %d: no certificate from the new intermediate within 5s", n)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			time.Sleep(100 * time.Millisecond)
			stop()
			wg.Wait()
			t.Logf("%s: %d requests, %d failed, %d intermediates used", mode, ok.Load(), failed.Load(), len(seen))
			if failed.Load() != 0 || ok.Load() < 50 {
				t.Fatalf("%d failed of %d: want zero failures and some load", failed.Load(), ok.Load()+failed.Load())
			}
			if n := testutil.CollectAndCount(reg, "meshca_file_ca_reloads_total"); n == 0 {
				t.Error("no reload was counted")
			}
		})
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSignsWithEachCAKeyType: RSA and ECDSA intermediates both sign, and RSA leaves get keyEncipherment.
func TestSignsWithEachCAKeyType(t *testing.T) {
	for name, key := range map[string]func() crypto.Signer{
		"ECDSA P-256 CA": func() crypto.Signer { return catest.ECKey(t) },
		"RSA-3072 CA":    func() crypto.Signer { return catest.RSAKey(t, 3072) },
	} {
		t.Run(name, func(t *testing.T) {
			g := generateWith(t, file.GenerateOptions{IntermediateKey: key()})
			b := catest.FileBackend(t, writeDir(t, g), nil)
			for _, leafKey := range []crypto.Signer{catest.ECKey(t), catest.RSAKey(t, 2048)} {
				resp, err := b.Sign(context.Background(), &backends.SignRequest{PublicKey: leafKey.Public(),
					URIs: []*url.URL{mustURL(t, "spiffe://cluster.local/ns/a/sa/b")}, TTL: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				leaf := resp.Leaf()
				if err := leaf.CheckSignatureFrom(g.Intermediate); err != nil {
					t.Fatalf("leaf not signed by the intermediate: %v", err)
				}
				_, isRSA := leafKey.(*rsa.PrivateKey)
				if got := leaf.KeyUsage&x509.KeyUsageKeyEncipherment != 0; got != isRSA {
					t.Errorf("keyEncipherment = %v for an RSA leaf key = %v", got, isRSA)
				}
				if len(resp.Chain) != 3 || !resp.Chain[2].Equal(g.Root) {
					t.Errorf("chain of %d, want leaf, intermediate, root", len(resp.Chain))
				}
				// The backend says it checked the signature in-process, and names the certificate whose key did.
				if !resp.SignatureChecked() || !resp.SelfChecked.Issuer.Equal(g.Intermediate) {
					t.Errorf("SignatureChecked() = %v, SelfChecked = %+v", resp.SignatureChecked(), resp.SelfChecked)
				}
			}
		})
	}
}

// TestLeafLifetimeIsCappedAtTheCAExpiry: a CA with two hours left issues a 24h request for those two hours
// (the core reports the shortening), never a leaf that outlives its issuer.
func TestLeafLifetimeIsCappedAtTheCAExpiry(t *testing.T) {
	g := generateWith(t, file.GenerateOptions{IntermediateTTL: 2 * time.Hour})
	b := catest.FileBackend(t, writeDir(t, g), nil)
	resp, err := b.Sign(context.Background(), &backends.SignRequest{PublicKey: catest.ECKey(t).Public(),
		URIs: []*url.URL{mustURL(t, "spiffe://cluster.local/ns/a/sa/b")}, TTL: 24 * time.Hour})
	if err != nil {
		t.Fatalf("Sign with a CA that expires before the requested lifetime: %v", err)
	}
	if got, want := resp.Leaf().NotAfter, g.Intermediate.NotAfter; !got.Equal(want) {
		t.Fatalf("leaf NotAfter = %s, want the CA's NotAfter %s", got.UTC(), want.UTC())
	}
}

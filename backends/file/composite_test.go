package file_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr/composite"
)

func compositeRequest(t *testing.T, key crypto.Signer) *backends.SignRequest {
	t.Helper()
	return &backends.SignRequest{PublicKey: key.Public(), URIs: []*url.URL{mustURL(t,
		"spiffe://cluster.local/ns/a/sa/b")}, TTL: time.Hour}
}

// The CSR's key type picks the PKI: a composite key gets a leaf from the composite CA of compositeDir that
// verifies with composite.VerifyChain to CompositeRoots, with digitalSignature only; a classical key on the
// same backend still gets the classical CA; the composite root is never among Roots.
func TestCompositeDirSignsCompositeKeys(t *testing.T) {
	b, g := catest.CompositeFileBackend(t, nil)
	key := catest.CompositeKey(t)
	resp, err := b.Sign(context.Background(), compositeRequest(t, key))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := b.CompositeRoots(context.Background())
	if err != nil || len(roots) != 1 || !roots[0].Equal(g.Root) {
		t.Fatalf("CompositeRoots = %v, %v; want the composite root", roots, err)
	}
	if len(resp.Chain) != 3 || !resp.Chain[1].Equal(g.Intermediate) || !resp.Chain[2].Equal(g.Root) {
		t.Fatalf("chain of %d certificates, want leaf, composite intermediate, composite root", len(resp.Chain))
	}
	if err := composite.VerifyChain(resp.Chain, roots, time.Now()); err != nil {
		t.Fatalf("the composite chain does not verify: %v", err)
	}
	leaf := resp.Leaf()
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature || !backends.SameKey(backends.CertificateKey(leaf),
		key.Public()) {
		t.Errorf("leaf key usage %b, key %T", leaf.KeyUsage, backends.CertificateKey(leaf))
	}
	classical, _ := b.Roots(context.Background())
	for _, r := range classical {
		if backends.IsComposite(r) {
			t.Error("Roots, which feeds root-cert.pem, holds the composite root")
		}
	}
	ec, err := b.Sign(context.Background(), compositeRequest(t, catest.ECKey(t)))
	if err != nil || backends.IsComposite(ec.Chain[1]) {
		t.Fatalf("classical key: %v (issuer composite: %v)", err, err == nil && backends.IsComposite(ec.Chain[1]))
	}
}

// Without compositeDir a composite key is refused (ErrRefused naming the key), never signed by the classical CA.
func TestCompositeKeyWithoutCompositeDirIsRefused(t *testing.T) {
	dir, _ := catest.FileCA(t)
	b := catest.FileBackend(t, dir, nil)
	_, err := b.Sign(context.Background(), compositeRequest(t, catest.CompositeKey(t)))
	if !errors.Is(err, backends.ErrRefused) {
		t.Fatalf("got %v, want ErrRefused", err)
	}
	if roots, err := b.CompositeRoots(context.Background()); err != nil || len(roots) != 0 {
		t.Errorf("CompositeRoots = %v, %v; want none", roots, err)
	}
}

// compositeDir must hold a composite CA whose key, chain and root agree.
func TestCompositeDirRefusesBrokenCAs(t *testing.T) {
	classical, _ := catest.FileCA(t)
	g := generateWith(t, file.GenerateOptions{NewKey: file.NewCompositeKey})
	other := generateWith(t, file.GenerateOptions{NewKey: file.NewCompositeKey})
	tests := []struct {
		name string
		edit func(g *file.Generated) *file.Generated
		dir  string
	}{
		{"a classical CA", nil, classical},
		{"the key of another composite CA", func(g *file.Generated) *file.Generated {
			c := *g
			c.KeyPEM = other.KeyPEM
			return &c
		}, ""},
		{"an intermediate under another composite root", func(g *file.Generated) *file.Generated {
			c := *g
			c.RootPEM = other.RootPEM
			return &c
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = writeDir(t, tt.edit(g))
				// cert-chain.pem would hold the right root: keep only what the case means to test.
				if err := os.Remove(filepath.Join(dir, file.CertChainFile)); err != nil {
					t.Fatal(err)
				}
			}
			b, err := file.New(context.Background(), file.Config{Dir: classical, CompositeDir: dir,
				Logger: catest.DiscardLogger()})
			if err == nil {
				b.Close()
			}
			if !errors.Is(err, file.ErrInvalidCA) {
				t.Fatalf("got %v, want ErrInvalidCA", err)
			}
		})
	}
}

func TestGenerateRefusesACompositeRootCRL(t *testing.T) {
	if _, err := file.Generate(file.GenerateOptions{NewKey: file.NewCompositeKey, RootCRL: true}); err == nil {
		t.Fatal("Generate made a composite hierarchy with a root CRL, which crypto/x509 cannot sign")
	}
}

package file_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr/composite"
	"github.com/meshca/meshca/internal/testpki"
)

// caTmpl is a CA certificate template named cn, valid for a day around now.
func caTmpl(cn string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true}
}

// writeFiles writes the cacerts files of files into a new directory; names missing from files are not written.
func writeFiles(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// compositeCAUnder returns the PEM certificate and PKCS #8 key of a new composite CA named cn, signed by parent.
func compositeCAUnder(t *testing.T, cn string, parent *x509.Certificate, parentKey crypto.Signer) (cert, key []byte) {
	t.Helper()
	caKey, err := file.NewCompositeKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := caTmpl(cn)
	tmpl.SerialNumber = big.NewInt(2)
	der, err := composite.CreateCertificate(rand.Reader, tmpl, parent, caKey.Public(),
		parentKey.(*composite.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := composite.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// cert-chain.pem is optional: absent or blank, a CA signed by the root itself loads and signs; and when the
// signing CA sits under an intermediate (root -> intermediate -> issuing CA), cert-chain.pem is where that
// intermediate comes from, and the issued chain carries it. Of two chains to root-cert.pem the shorter is used.
func TestCertChainFileIsOptionalAndSuppliesIntermediates(t *testing.T) {
	g := generate(t)
	rootKey, midKey, caKey := testpki.Key(t), testpki.Key(t), testpki.Key(t)
	root := testpki.Sign(t, caTmpl("three-level root"), nil, rootKey.Public(), rootKey)
	mid := testpki.Sign(t, caTmpl("three-level intermediate"), root, midKey.Public(), rootKey)
	issuing := testpki.Sign(t, caTmpl("three-level issuing CA"), mid, caKey.Public(), midKey)
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	threeLevel := map[string][]byte{file.CACertFile: testpki.CertsPEM(issuing),
		file.CAKeyFile:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKeyDER}),
		file.CertChainFile: testpki.CertsPEM(issuing, mid, root), file.RootCertFile: testpki.CertsPEM(root)}
	// cross: the issuing CA's issuer is a root of its own and, cross-signed, an intermediate under root
	crossRoot := testpki.Sign(t, caTmpl("cross-signed CA"), nil, midKey.Public(), midKey)
	crossMid := testpki.Sign(t, caTmpl("cross-signed CA"), root, midKey.Public(), rootKey)
	crossCA := testpki.Sign(t, caTmpl("issuing CA under a cross-signed CA"), crossRoot, caKey.Public(), midKey)
	cross := map[string][]byte{file.CACertFile: testpki.CertsPEM(crossCA), file.CAKeyFile: threeLevel[file.CAKeyFile],
		file.CertChainFile: testpki.CertsPEM(crossCA, crossMid), file.RootCertFile: testpki.CertsPEM(root, crossRoot)}
	tests := []struct {
		name  string
		files map[string][]byte
		root  *x509.Certificate
		want  []*x509.Certificate // the issued chain above the leaf
	}{
		{"a two-level CA without cert-chain.pem loads",
			map[string][]byte{file.CACertFile: g.CertPEM, file.CAKeyFile: g.KeyPEM, file.RootCertFile: g.RootPEM},
			g.Root, []*x509.Certificate{g.Intermediate, g.Root}},
		{"a two-level CA with a blank cert-chain.pem loads",
			map[string][]byte{file.CACertFile: g.CertPEM, file.CAKeyFile: g.KeyPEM, file.RootCertFile: g.RootPEM,
				file.CertChainFile: []byte("\n \n")},
			g.Root, []*x509.Certificate{g.Intermediate, g.Root}},
		{"a three-level CA takes its intermediate from cert-chain.pem", threeLevel, root,
			[]*x509.Certificate{issuing, mid, root}},
		{"of two verified chains the shorter is served", cross, crossRoot, []*x509.Certificate{crossCA, crossRoot}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := catest.FileBackend(t, writeFiles(t, tt.files), nil)
			chain := sign(t, b)
			if len(chain) != len(tt.want)+1 {
				t.Fatalf("issued chain of %d certificates, want %d", len(chain), len(tt.want)+1)
			}
			for i, c := range tt.want {
				if !chain[i+1].Equal(c) {
					t.Errorf("chain[%d] is %q, want %q", i+1, chain[i+1].Subject, c.Subject)
				}
			}
			if err := chainsTo(chain, tt.root); err != nil {
				t.Errorf("the issued chain does not verify to the root: %v", err)
			}
		})
	}
	t.Run("a three-level CA without its intermediate is refused", func(t *testing.T) {
		files := map[string][]byte{}
		for k, v := range threeLevel {
			files[k] = v
		}
		delete(files, file.CertChainFile)
		b, err := file.New(context.Background(), file.Config{Dir: writeFiles(t, files),
			Logger: catest.DiscardLogger()})
		if err == nil {
			b.Close()
		}
		if !errors.Is(err, file.ErrInvalidCA) {
			t.Fatalf("New: %v, want ErrInvalidCA", err)
		}
	})
}

// A composite signing CA that is itself the root needs no chain check beyond being the root; one whose path
// names and signatures reach the root is still checked as a whole by composite.VerifyChain, so an expired
// intermediate is refused although the signing CA itself is valid.
func TestCompositeDirChecksTheWholePath(t *testing.T) {
	classical, _ := catest.FileCA(t)
	g := generateWith(t, file.GenerateOptions{NewKey: file.NewCompositeKey})
	rootKeyDER, err := composite.MarshalPKCS8PrivateKey(g.RootKey)
	if err != nil {
		t.Fatal(err)
	}
	// under an intermediate that expired yesterday: names and signatures still lead to the root
	old := generateWith(t, file.GenerateOptions{NewKey: file.NewCompositeKey, Now: time.Now().Add(-48 * time.Hour),
		IntermediateTTL: 24 * time.Hour})
	underCert, underKey := compositeCAUnder(t, "issuing CA under an expired intermediate", old.Intermediate,
		old.IntermediateKey)
	tests := []struct {
		name  string
		files map[string][]byte
		ok    bool
	}{
		{"the composite root as the signing CA loads", map[string][]byte{file.CACertFile: g.RootPEM,
			file.CAKeyFile:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rootKeyDER}),
			file.RootCertFile: g.RootPEM}, true},
		{"a CA under an expired intermediate is refused", map[string][]byte{file.CACertFile: underCert,
			file.CAKeyFile:    underKey,
			file.RootCertFile: old.RootPEM, file.CertChainFile: append(append([]byte{}, underCert...), old.CertPEM...)},
			false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := file.New(context.Background(), file.Config{Dir: classical,
				CompositeDir: writeFiles(t, tt.files), Logger: catest.DiscardLogger()})
			if err == nil {
				b.Close()
			}
			if tt.ok && err != nil {
				t.Fatalf("New: %v", err)
			}
			if !tt.ok && !errors.Is(err, file.ErrInvalidCA) {
				t.Fatalf("New: %v, want ErrInvalidCA", err)
			}
		})
	}
}

// A composite CA has no CRLs: a ca-crl.pem beside it is refused (CRLBundle says so, wrapping ErrInvalidCRL)
// while the CA itself is in use; without one, CRLBundle is empty.
func TestACompositeCAsCRLIsRefused(t *testing.T) {
	g := generateWith(t, file.GenerateOptions{NewKey: file.NewCompositeKey})
	classical := generate(t)
	for _, withCRL := range []bool{false, true} {
		dir := writeDir(t, g)
		if withCRL {
			crl := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: testpki.CRL(t, classical.Root,
				classical.RootKey, 1, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))})
			if err := os.WriteFile(filepath.Join(dir, file.CRLFile), crl, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		b := catest.FileBackend(t, dir, nil)
		crls, err := b.CRLBundle(context.Background())
		if withCRL != errors.Is(err, file.ErrInvalidCRL) || len(crls) != 0 {
			t.Errorf("with ca-crl.pem %t: CRLBundle = %d bytes, %v", withCRL, len(crls), err)
		}
	}
}

// A signing CA under an intermediate whose pathLenConstraint is 0 could never issue a leaf that relying parties
// accept: RFC 5280 counts the signing CA among the CAs below that intermediate. crypto/x509's Verify and
// composite.VerifyChain, given the signing CA as the first certificate, treat it as a leaf and do not count it;
// the file backend must, and refuse the CA when it loads rather than at every issuance. Generate's intermediate
// has pathLenConstraint 0; a CA directly under the root (pathLenConstraint 1) loads, as the other tests show.
func TestASigningCAUnderAPathLenZeroIntermediateIsRefused(t *testing.T) {
	classical := generate(t)
	caKey := testpki.Key(t)
	under := testpki.Sign(t, caTmpl("issuing CA under a pathLen 0 intermediate"), classical.Intermediate,
		caKey.Public(), classical.IntermediateKey)
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	classicalDir := writeFiles(t, map[string][]byte{file.CACertFile: testpki.CertsPEM(under),
		file.CAKeyFile:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKeyDER}),
		file.CertChainFile: testpki.CertsPEM(under, classical.Intermediate), file.RootCertFile: classical.RootPEM})

	g := generateWith(t, file.GenerateOptions{NewKey: file.NewCompositeKey})
	compCert, compKey := compositeCAUnder(t, "composite issuing CA under a pathLen 0 intermediate", g.Intermediate,
		g.IntermediateKey)
	compositeDir := writeFiles(t, map[string][]byte{file.CACertFile: compCert, file.CAKeyFile: compKey,
		file.CertChainFile: append(append([]byte{}, compCert...), g.CertPEM...), file.RootCertFile: g.RootPEM})

	// of two verified chains, the shorter runs through a root with pathLenConstraint 0: the longer is served
	rootKey, crossKey := testpki.Key(t), testpki.Key(t)
	root := testpki.Sign(t, caTmpl("root"), nil, rootKey.Public(), rootKey)
	zeroTmpl := caTmpl("cross-signed CA")
	zeroTmpl.MaxPathLenZero = true
	zeroRoot := testpki.Sign(t, zeroTmpl, nil, crossKey.Public(), crossKey)
	crossMid := testpki.Sign(t, caTmpl("cross-signed CA"), root, crossKey.Public(), rootKey)
	crossCA := testpki.Sign(t, caTmpl("issuing CA"), zeroRoot, caKey.Public(), crossKey)
	t.Run("of two chains the one that lets the CA sign is served", func(t *testing.T) {
		b := catest.FileBackend(t, writeFiles(t, map[string][]byte{file.CACertFile: testpki.CertsPEM(crossCA),
			file.CAKeyFile:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKeyDER}),
			file.CertChainFile: testpki.CertsPEM(crossCA, crossMid),
			file.RootCertFile:  testpki.CertsPEM(root, zeroRoot)}), nil)
		chain := sign(t, b)
		if len(chain) != 4 || !chain[2].Equal(crossMid) || !chain[3].Equal(root) {
			t.Fatalf("issued chain of %d certificates, want leaf, issuing CA, %q, %q", len(chain), crossMid.Subject,
				root.Subject)
		}
		if err := chainsTo(chain, root); err != nil {
			t.Errorf("the issued chain does not verify to the root: %v", err)
		}
	})

	good, _ := catest.FileCA(t)
	for _, tt := range []struct {
		name string
		cfg  file.Config
	}{
		{"classical", file.Config{Dir: classicalDir}},
		{"composite", file.Config{Dir: good, CompositeDir: compositeDir}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = catest.DiscardLogger()
			b, err := file.New(context.Background(), tt.cfg)
			if err == nil {
				b.Close()
			}
			if !errors.Is(err, file.ErrInvalidCA) {
				t.Fatalf("New: %v, want ErrInvalidCA", err)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// An X.509 version 1 root (no extensions at all, as some old enterprise roots are) is a trust anchor all the same:
// crypto/x509 lets a v1 certificate sign, and its absent pathLenConstraint limits nothing (crypto/x509 reports
// MaxPathLen 0 for it, without MaxPathLenZero).
func TestAVersion1RootStillAnchorsTheCA(t *testing.T) {
	rootKey, caKey := testpki.Key(t), testpki.Key(t)
	root := v1Root(t, rootKey.(*ecdsa.PrivateKey))
	if root.Version != 1 || root.BasicConstraintsValid || root.MaxPathLen != 0 || root.MaxPathLenZero {
		t.Fatalf("precondition: a v1 root, got version %d, MaxPathLen %d", root.Version, root.MaxPathLen)
	}
	ca := testpki.Sign(t, caTmpl("issuing CA under a v1 root"), root, caKey.Public(), rootKey)
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	b := catest.FileBackend(t, writeFiles(t, map[string][]byte{file.CACertFile: testpki.CertsPEM(ca),
		file.CAKeyFile:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKeyDER}),
		file.RootCertFile: testpki.CertsPEM(root)}), nil)
	if err := chainsTo(sign(t, b), root); err != nil {
		t.Errorf("the issued chain does not verify to the root: %v", err)
	}
}

// v1Root builds a self-signed X.509 version 1 certificate (RFC 5280, Section 4.1: no version field, no
// extensions), which crypto/x509 cannot create.
func v1Root(t *testing.T, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	name, err := asn1.Marshal(pkix.Name{CommonName: "version 1 root"}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	alg := pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}} // ecdsa-with-SHA256
	tbs, err := asn1.Marshal(struct {
		Serial   *big.Int
		Alg      pkix.AlgorithmIdentifier
		Issuer   asn1.RawValue
		Validity struct{ NotBefore, NotAfter time.Time }
		Subject  asn1.RawValue
		Key      asn1.RawValue
	}{big.NewInt(1), alg, asn1.RawValue{FullBytes: name},
		struct{ NotBefore, NotAfter time.Time }{time.Now().Add(-time.Hour).UTC(), time.Now().Add(24 * time.Hour).UTC()},
		asn1.RawValue{FullBytes: name}, asn1.RawValue{FullBytes: spki}})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		TBS asn1.RawValue
		Alg pkix.AlgorithmIdentifier
		Sig asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, alg, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

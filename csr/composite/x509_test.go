package composite_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/meshca/meshca/csr/composite"
)

// testCA is a self-signed composite root made by CreateCertificate.
type testCA struct {
	key  *composite.PrivateKey
	cert *x509.Certificate
	der  []byte
}

func newCA(tb testing.TB) *testCA {
	tb.Helper()
	key := newKey(tb, composite.MLDSA65ECDSAP256SHA512())
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"cluster.local"}, CommonName: "composite root"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		PublicKey:             key.PublicKey(),
	}
	der, err := composite.CreateCertificate(rand.Reader, tmpl, tmpl, key.PublicKey(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &testCA{key: key, cert: cert, der: der}
}

func (ca *testCA) issue(tb testing.TB, pub crypto.PublicKey) []byte {
	tb.Helper()
	spiffe, _ := url.Parse("spiffe://cluster.local/ns/default/sa/sleep")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(30 * time.Minute),
		URIs:         []*url.URL{spiffe},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := composite.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func TestCompositeRootIsSelfSigned(t *testing.T) {
	ca := newCA(t)
	if err := composite.VerifyCertificateSignature(ca.der, ca.key.PublicKey()); err != nil {
		t.Fatalf("root self-signature: %v", err)
	}
	pub, err := composite.ParsePKIXPublicKey(ca.cert.RawSubjectPublicKeyInfo)
	if err != nil || !ca.key.PublicKey().Equal(pub) {
		t.Fatalf("the root does not certify its composite key: %v", err)
	}
	if !ca.cert.IsCA || len(ca.cert.SubjectKeyId) != 20 || ca.cert.Subject.CommonName != "composite root" {
		t.Errorf("root fields: IsCA %v, SubjectKeyId %x, subject %s", ca.cert.IsCA, ca.cert.SubjectKeyId,
			ca.cert.Subject)
	}
	assertInvalid(t, composite.VerifyCertificateSignature(flipBit(ca.der, len(ca.der)-1), ca.key.PublicKey()))
}

func TestCompositeCAIssuesLeaves(t *testing.T) {
	ca := newCA(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafKey := newKey(t, composite.MLDSA65ECDSAP256SHA512())
	tests := []struct {
		name string
		pub  crypto.PublicKey
	}{
		{"an ECDSA P-256 workload key", &ecKey.PublicKey},
		{"a composite workload key", leafKey.PublicKey()},
	}
	for _, tt := range tests {
		t.Run("a leaf for "+tt.name+" verifies and fails after a flipped bit", func(t *testing.T) {
			der := ca.issue(t, tt.pub)
			if err := composite.VerifyCertificateSignature(der, ca.key.PublicKey()); err != nil {
				t.Fatalf("leaf signature: %v", err)
			}
			o, ok := parseOuter(der)
			if !ok {
				t.Fatal("leaf does not split into tbsCertificate and signature")
			}
			crossCheck(t, "id-MLDSA65-ECDSA-P256-SHA512", ca.key.PublicKey().Bytes(), o.tbs, nil, o.sig)
			leaf, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(leaf.RawIssuer, ca.cert.RawSubject) ||
				!bytes.Equal(leaf.AuthorityKeyId, ca.cert.SubjectKeyId) {
				t.Error("the leaf's issuer or authority key identifier is not the root's")
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/sleep" ||
				leaf.IsCA {
				t.Errorf("leaf fields: URIs %v, IsCA %v", leaf.URIs, leaf.IsCA)
			}
			var certified crypto.PublicKey = leaf.PublicKey
			if _, ok := tt.pub.(*composite.PublicKey); ok {
				if certified, err = composite.ParsePKIXPublicKey(leaf.RawSubjectPublicKeyInfo); err != nil {
					t.Fatal(err)
				}
			}
			if !tt.pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(certified) {
				t.Error("the leaf certifies another key")
			}
			assertInvalid(t, composite.VerifyCertificateSignature(flipBit(der, len(der)-1), ca.key.PublicKey()))
			i := bytes.Index(der, []byte("sleep"))
			assertInvalid(t, composite.VerifyCertificateSignature(flipBit(der, i), ca.key.PublicKey()))
			assertInvalid(t, composite.VerifyCertificateSignature(der, leafKey.PublicKey()))
		})
	}
}

func TestCreateCertificateRefusesAParentOfAnotherKey(t *testing.T) {
	ca := newCA(t)
	other := newKey(t, composite.MLDSA65ECDSAP256SHA512())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	if _, err := composite.CreateCertificate(rand.Reader, tmpl, ca.cert, other.PublicKey(), other); !errors.Is(err,
		composite.ErrUnsupported) {
		t.Errorf("got %v, want ErrUnsupported", err)
	}
}

// withOuterAlgorithm re-encodes a certificate or CSR with another outer signatureAlgorithm, appending params
// (if not nil) inside its AlgorithmIdentifier.
func withOuterAlgorithm(t *testing.T, der []byte, oid []int, params []byte) []byte {
	t.Helper()
	in := cryptobyte.String(der)
	var outer, tbs, alg, sig cryptobyte.String
	if !in.ReadASN1(&outer, cbasn1.SEQUENCE) || !outer.ReadASN1Element(&tbs, cbasn1.SEQUENCE) ||
		!outer.ReadASN1Element(&alg, cbasn1.SEQUENCE) || !outer.ReadASN1Element(&sig, cbasn1.BIT_STRING) {
		t.Fatal("certificate does not parse")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddBytes(params)
		})
		b.AddBytes(sig)
	})
	return b.BytesOrPanic()
}

func TestVerifyCertificateSignatureRefusals(t *testing.T) {
	ca := newCA(t)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mkey, err := composite.GenerateMLDSAKey(composite.MLDSA65(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		der     []byte
		issuer  crypto.PublicKey
		wantErr error
	}{
		{
			"an outer algorithm other than the inner one",
			withOuterAlgorithm(t, ca.der, []int{1, 3, 6, 1, 5, 5, 7, 6, 40}, nil),
			ca.key.PublicKey(),
			composite.ErrMalformed,
		},
		{"a classical issuer key", ca.der, &ecKey.PublicKey, composite.ErrUnsupported},
		{"an ML-DSA issuer for a composite signature", ca.der, mkey.PublicKey(), composite.ErrInvalidSignature},
		{"trailing data", append(bytes.Clone(ca.der), 0), ca.key.PublicKey(), composite.ErrMalformed},
		{"a truncated certificate", ca.der[:len(ca.der)-10], ca.key.PublicKey(), composite.ErrMalformed},
		{"empty input", nil, ca.key.PublicKey(), composite.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if err := composite.VerifyCertificateSignature(tt.der, tt.issuer); !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

package backends

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/meshca/meshca/csr/composite"
)

// compositeTestCA is a self-signed composite ML-DSA-65 + ECDSA-P256 CA that signs the leaves of a test.
type compositeTestCA struct {
	cert *x509.Certificate
	key  *composite.PrivateKey
}

func newCompositeTestCA(tb testing.TB) *compositeTestCA {
	tb.Helper()
	key := newCompositeKey(tb).(*composite.PrivateKey)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "checkleaf composite test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	ca := &compositeTestCA{key: key}
	ca.cert = ca.sign(tb, tmpl, tmpl, key.PublicKey())
	return ca
}

func (ca *compositeTestCA) sign(tb testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	tb.Helper()
	der, err := composite.CreateCertificate(rand.Reader, tmpl, parent, pub, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// issue signs tmpl for pub with the composite CA and returns the chain leaf, CA.
func (ca *compositeTestCA) issue(tb testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) []*x509.Certificate {
	tb.Helper()
	return []*x509.Certificate{ca.sign(tb, tmpl, ca.cert, pub), ca.cert}
}

func newCompositeKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	k, err := composite.GenerateKey(composite.MLDSA65ECDSAP256SHA512(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestCertificateKeyReadsCompositeKeys(t *testing.T) {
	ca := newCompositeTestCA(t)
	ec := newTestCA(t)
	tests := []struct {
		name          string
		cert          *x509.Certificate
		want          crypto.PublicKey
		wantComposite bool
	}{
		{"a composite CA certificate", ca.cert, ca.key.Public(), true},
		{"an ECDSA CA certificate", ec.cert, ec.key.Public(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CertificateKey(tt.cert); !SameKey(got, tt.want) {
				t.Errorf("CertificateKey = %T, not the certified key", got)
			}
			if IsComposite(tt.cert) != tt.wantComposite {
				t.Errorf("IsComposite = %v, want %v", !tt.wantComposite, tt.wantComposite)
			}
		})
	}
}

// A composite leaf passes CheckLeaf with the composite key requested, and only with it: the rule reads the key
// crypto/x509 leaves unparsed.
func TestCheckLeafAcceptsCompositeLeaves(t *testing.T) {
	ca := newCompositeTestCA(t)
	req := workloadRequest(t, newCompositeKey(t), testID)
	chain := ca.issue(t, honestTemplate(req), req.PublicKey)
	if chain[0].PublicKey != nil {
		t.Fatalf("crypto/x509 parsed the composite key as %T; this test expects it unparsed", chain[0].PublicKey)
	}
	if err := CheckLeaf(req, chain); err != nil {
		t.Fatalf("CheckLeaf: %v", err)
	}
}

package crltest

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshca/meshca/internal/testpki"
)

// PKI is a root CA and an intermediate CA signed by it.
type PKI struct {
	Root, Inter       *x509.Certificate
	RootKey, InterKey crypto.Signer
	// Now is the time the PKI was made; certificates are valid from an hour before it.
	Now time.Time
}

// New makes a root and an intermediate named after name.
func New(tb testing.TB, name string) *PKI {
	tb.Helper()
	p := &PKI{Now: time.Now()}
	p.RootKey, p.InterKey = Key(tb), Key(tb)
	p.Root = sign(tb, &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"meshca test"}, CommonName: name + " root"},
		NotBefore:             p.Now.Add(-time.Hour),
		NotAfter:              p.Now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, p.RootKey.Public(), p.RootKey)
	p.Inter = p.intermediate(tb, name, p.InterKey)
	return p
}

// Chain returns the CA chain, intermediate first.
func (p *PKI) Chain() []*x509.Certificate { return []*x509.Certificate{p.Inter, p.Root} }

// Leaf issues a workload certificate for the SPIFFE ID identity from the intermediate, valid for ttl.
func (p *PKI) Leaf(tb testing.TB, identity string, ttl time.Duration) *x509.Certificate {
	tb.Helper()
	u, err := url.Parse(identity)
	if err != nil {
		tb.Fatal(err)
	}
	return sign(tb, &x509.Certificate{
		NotBefore:   p.Now.Add(-time.Minute),
		NotAfter:    p.Now.Add(ttl),
		URIs:        []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}, p.Inter, Key(tb).Public(), p.InterKey)
}

// RootCRL returns a CRL signed by the root (an offline root's CRL, made outside meshca) with the given
// number, valid from an hour ago for lifetime, revoking serials.
func (p *PKI) RootCRL(tb testing.TB, number int64, lifetime time.Duration, serials ...*big.Int) []byte {
	tb.Helper()
	return CRL(tb, p.Root, p.RootKey, number, p.Now.Add(-time.Hour), p.Now.Add(-time.Hour+lifetime), serials...)
}

// CRL returns a CRL of ca signed by key (testpki.CRL).
func CRL(tb testing.TB, ca *x509.Certificate, key crypto.Signer, number int64, this, next time.Time,
	serials ...*big.Int) []byte {
	tb.Helper()
	return testpki.CRL(tb, ca, key, number, this, next, serials...)
}

// Key returns a new ECDSA P-256 key.
func Key(tb testing.TB) crypto.Signer {
	tb.Helper()
	return testpki.Key(tb)
}

func sign(tb testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	tb.Helper()
	return testpki.Sign(tb, tmpl, parent, pub, key)
}

// WritePEM writes certificates as PEM to a new file in dir and returns its path.
func WritePEM(tb testing.TB, dir, name string, certs ...*x509.Certificate) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, testpki.CertsPEM(certs...), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// NewIntermediate returns a PKI with the same root and a new intermediate named after name, as an
// intermediate rotation makes.
func (p *PKI) NewIntermediate(tb testing.TB, name string) *PKI {
	tb.Helper()
	n := *p
	n.InterKey = Key(tb)
	n.Inter = p.intermediate(tb, name, n.InterKey)
	return &n
}

// intermediate signs an intermediate CA for key, named after name, with the root.
func (p *PKI) intermediate(tb testing.TB, name string, key crypto.Signer) *x509.Certificate {
	tb.Helper()
	return sign(tb, &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"meshca test"}, CommonName: name + " intermediate"},
		NotBefore:             p.Now.Add(-time.Hour),
		NotAfter:              p.Now.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, p.Root, key.Public(), p.RootKey)
}

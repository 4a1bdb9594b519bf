package catest

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"net/url"
	"testing"

	"github.com/meshca/meshca/csr/composite"
	"github.com/meshca/meshca/internal/testpki"
)

// CompositeKey returns a fresh composite ML-DSA-65 + ECDSA-P256 key (id-MLDSA65-ECDSA-P256-SHA512).
func CompositeKey(tb testing.TB) *composite.PrivateKey {
	tb.Helper()
	k, err := composite.GenerateKey(composite.MLDSA65ECDSAP256SHA512(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// ECKey returns a fresh ECDSA P-256 key.
func ECKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	return testpki.Key(tb)
}

// RSAKey returns a fresh RSA key of the given size.
func RSAKey(tb testing.TB, bits int) crypto.Signer {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Ed25519Key returns a fresh Ed25519 key.
func Ed25519Key(tb testing.TB) crypto.Signer {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// CSROptions describes a CSR for CSR to build.
type CSROptions struct {
	// Key signs the CSR; default a new ECDSA P-256 key. A *composite.PrivateKey makes a composite CSR.
	Key     crypto.Signer
	Subject pkix.Name
	URIs    []string
	DNS     []string
	IPs     []string
	Emails  []string
	// IsCA adds basicConstraints cA=TRUE.
	IsCA bool
	// Extensions are added verbatim.
	Extensions []pkix.Extension
}

// CSR returns a PEM CSR built from o, and the key that signed it.
func CSR(tb testing.TB, o CSROptions) ([]byte, crypto.Signer) {
	tb.Helper()
	if o.Key == nil {
		o.Key = ECKey(tb)
	}
	tmpl := &x509.CertificateRequest{
		Subject:         o.Subject,
		DNSNames:        o.DNS,
		EmailAddresses:  o.Emails,
		ExtraExtensions: o.Extensions,
	}
	for _, u := range o.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			tb.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	for _, ip := range o.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	if o.IsCA {
		v, _ := asn1.Marshal(struct{ IsCA bool }{true})
		tmpl.ExtraExtensions = append(
			tmpl.ExtraExtensions,
			pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: v},
		)
	}
	var der []byte
	var err error
	if k, ok := o.Key.(*composite.PrivateKey); ok { // crypto/x509 cannot sign with a composite key
		der, err = composite.CreateCertificateRequest(rand.Reader, tmpl, k)
	} else {
		der, err = x509.CreateCertificateRequest(rand.Reader, tmpl, o.Key)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), o.Key
}

// WorkloadCSR returns a CSR asking for one SPIFFE ID with a P-256 key, like istio-agent with
// ECC_SIGNATURE_ALGORITHM=ECDSA.
func WorkloadCSR(tb testing.TB, spiffeID string) ([]byte, crypto.Signer) {
	tb.Helper()
	return CSR(tb, CSROptions{URIs: []string{spiffeID}})
}

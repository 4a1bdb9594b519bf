package backends

import (
	"context"
	"crypto"
	"crypto/x509"

	"github.com/meshca/meshca/csr/composite"
)

// CompositeRooter is implemented by backends that also sign with a composite ML-DSA-65 + ECDSA-P256 CA
// (draft-ietf-lamps-pq-composite-sigs, experimental) for CSRs whose key is composite. Its roots are kept
// apart from Roots (which feeds the root-cert.pem Envoy loads) and from PostQuantumRoots (RFC 9881 ML-DSA,
// which crypto/x509 verifies): only meshca's own composite verifier (composite.VerifyChain) checks them.
type CompositeRooter interface {
	CompositeRoots(ctx context.Context) ([]*x509.Certificate, error)
}

// IsComposite reports whether c certifies a composite key: crypto/x509 parses such a certificate but leaves
// its key unparsed (PublicKeyAlgorithm Unknown), and csr/composite reads it.
func IsComposite(c *x509.Certificate) bool {
	_, ok := compositeKey(c)
	return ok
}

// compositeKey returns the composite key c certifies, if it certifies one.
func compositeKey(c *x509.Certificate) (*composite.PublicKey, bool) {
	if c == nil || c.PublicKey != nil || c.PublicKeyAlgorithm != x509.UnknownPublicKeyAlgorithm {
		return nil, false
	}
	k, err := composite.ParsePKIXPublicKey(c.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, false
	}
	pub, ok := k.(*composite.PublicKey)
	return pub, ok
}

// CertificateKey returns the public key c certifies: crypto/x509's parse, or the composite key that
// crypto/x509 leaves unparsed; nil when neither knows it.
func CertificateKey(c *x509.Certificate) crypto.PublicKey {
	if k, ok := compositeKey(c); ok {
		return k
	}
	return c.PublicKey
}

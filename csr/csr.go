package csr

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
)

// MaxPEMSize bounds the PEM text of one CSR. An ML-DSA-87 CSR, the largest meshca accepts, is about 10 KiB.
const MaxPEMSize = 32 << 10

// Request is a parsed, self-signature-verified CSR whose key passed the key policy.
type Request struct {
	// CSR is the parsed request. Its SANs are requests, not facts.
	CSR *x509.CertificateRequest
	// PublicKey is the key to certify.
	PublicKey crypto.PublicKey
	// KeyType names the key for metrics and audit, e.g. "ECDSA-P256", "RSA-2048", "Ed25519".
	KeyType string
	// IsCA reports whether the CSR asked for a CA certificate (basicConstraints cA=TRUE).
	IsCA bool
	// HasSubject reports whether the CSR's subject holds any attribute.
	HasSubject bool
}

// KeyTypes lists every KeyType a Request can carry.
func KeyTypes() []string { return nil }

// Extension OIDs a CSR may carry. Their content is ignored except basicConstraints; meshca never copies
// extensions from a CSR into a certificate.
var (
	oidSubjectAltName       = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidBasicConstraints     = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage             = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage          = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidSubjectKeyIdentifier = asn1.ObjectIdentifier{2, 5, 29, 14}
)

// Parse decodes one PEM "CERTIFICATE REQUEST" block, verifies its self-signature and applies the key policy.
// Trailing data other than whitespace, a second block, unknown critical extensions and malformed
// basicConstraints are refused.
func Parse(pemBytes []byte) (*Request, error) {
	if len(pemBytes) > MaxPEMSize {
		return nil, fmt.Errorf("%w: %d bytes is larger than the %d-byte limit", ErrInvalidCSR, len(pemBytes), MaxPEMSize)
	}
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found; send a PEM \"CERTIFICATE REQUEST\"", ErrInvalidCSR)
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: PEM block is %q, want \"CERTIFICATE REQUEST\"", ErrInvalidCSR, block.Type)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: unexpected data after the CSR; send exactly one request", ErrInvalidCSR)
	}
	return ParseRaw(block.Bytes)
}

// ParseRaw is Parse for a DER-encoded CSR.
func ParseRaw(der []byte) (*Request, error) {
	c, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCSR, err)
	}
	if err := c.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: self-signature does not verify: %v", ErrInvalidCSR, err)
	}
	keyType, err := CheckKey(c.PublicKey)
	if err != nil {
		return nil, err
	}
	r := &Request{CSR: c, PublicKey: c.PublicKey, KeyType: keyType}
	for _, ext := range c.Extensions {
		switch {
		case ext.Id.Equal(oidBasicConstraints):
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			if rest, err := asn1.Unmarshal(ext.Value, &bc); err != nil || len(rest) != 0 {
				return nil, fmt.Errorf("%w: malformed basicConstraints extension", ErrInvalidCSR)
			}
			r.IsCA = bc.IsCA
		case ext.Id.Equal(oidSubjectAltName), ext.Id.Equal(oidKeyUsage), ext.Id.Equal(oidExtKeyUsage),
			ext.Id.Equal(oidSubjectKeyIdentifier):
		default:
			if ext.Critical {
				return nil, fmt.Errorf("%w: unknown critical extension %s", ErrInvalidCSR, ext.Id)
			}
		}
	}
	return r, nil
}

// CheckKey applies meshca's key policy (RSA of at least 2048 bits and at most 8192, ECDSA P-256 or P-384,
// Ed25519) and returns a short name for the key type.
func CheckKey(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < 2048 {
			return "", fmt.Errorf("%w: RSA key of %d bits; use at least 2048", ErrKeyPolicy, bits)
		}
		if bits > 8192 {
			return "", fmt.Errorf("%w: RSA key of %d bits; use at most 8192", ErrKeyPolicy, bits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return "", fmt.Errorf("%w: RSA public exponent %d", ErrKeyPolicy, k.E)
		}
		return fmt.Sprintf("RSA-%d", bits), nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ECDSA-P256", nil
		case elliptic.P384():
			return "ECDSA-P384", nil
		}
		return "", fmt.Errorf("%w: ECDSA curve %s; use P-256 or P-384", ErrKeyPolicy, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return "Ed25519", nil
	}
	return "", fmt.Errorf("%w: key type %T; use ECDSA P-256/P-384, RSA >= 2048 or Ed25519", ErrKeyPolicy, pub)
}

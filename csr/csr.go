package csr

import (
	"bytes"
	"crypto"
	"crypto/mldsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	"github.com/meshca/meshca/csr/composite"
)

// MaxPEMSize bounds the PEM text of one CSR. An RSA-8192 CSR, the largest meshca accepts, is under 3 KiB.
const MaxPEMSize = 32 << 10

// Request is a parsed, self-signature-verified CSR whose key passed the key policy and whose every extension
// request is one meshca can honour.
type Request struct {
	// CSR is the parsed request. Its SANs are requests, not facts: the issuance policy compares them with
	// the caller's identity. Email and IP SANs are left here for that policy to refuse.
	CSR *x509.CertificateRequest
	// PublicKey is the key to certify.
	PublicKey crypto.PublicKey
	// KeyType names the key for metrics and audit; it is always one of KeyTypes().
	KeyType string
	// IsCA reports whether the CSR asked for a CA certificate (basicConstraints cA=TRUE).
	IsCA bool
	// HasSubject reports whether the CSR's subject holds any attribute. The subject is never copied into a
	// certificate (see the package documentation); this is for audit records.
	HasSubject bool
}

// oidExtensionRequest is PKCS #9's extensionRequest attribute (RFC 2985 §5.4.2), the one attribute a CSR
// may carry.
var oidExtensionRequest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}

// signatureAlgorithms are the CSR signature algorithms meshca accepts: SHA-2 with RSA (PKCS #1 v1.5 or
// PSS), ECDSA and Ed25519. SHA-1, MD5, MD2 and DSA are refused.
var signatureAlgorithms = []x509.SignatureAlgorithm{
	x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
	x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
	x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512,
	x509.PureEd25519,
}

// Options widens the key policy beyond the classical keys every Parse accepts.
type Options struct {
	// MLDSA accepts ML-DSA-44/65/87 keys (FIPS 204, RFC 9881) with a pure ML-DSA self-signature.
	MLDSA bool
	// Composite accepts composite id-MLDSA65-ECDSA-P256-SHA512 keys self-signed with that algorithm
	// (draft-ietf-lamps-pq-composite-sigs, experimental: the draft's encodings may still change).
	Composite bool
}

// mldsaSignatures are the signature algorithms of ML-DSA keys in a CSR (RFC 9881 §3): the key's own.
var mldsaSignatures = []x509.SignatureAlgorithm{x509.MLDSA44, x509.MLDSA65, x509.MLDSA87}

// Parse decodes one PEM "CERTIFICATE REQUEST" block and checks it as ParseRaw does. Text before or after
// the block, PEM headers and a second block are refused.
func Parse(pemBytes []byte) (*Request, error) { return ParseWith(pemBytes, Options{}) }

// ParseWith is Parse with the key policy widened by opts.
func ParseWith(pemBytes []byte, opts Options) (*Request, error) {
	if len(pemBytes) > MaxPEMSize {
		return nil, fmt.Errorf(
			"%w: %d bytes is larger than the %d-byte limit",
			ErrInvalidCSR,
			len(pemBytes),
			MaxPEMSize,
		)
	}
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found; send a PEM \"CERTIFICATE REQUEST\"", ErrInvalidCSR)
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: PEM block is %q, want \"CERTIFICATE REQUEST\"", ErrInvalidCSR, bounded(block.Type))
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: the PEM block has headers; send a plain \"CERTIFICATE REQUEST\"", ErrInvalidCSR)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(pemBytes), []byte("-----BEGIN ")) || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data around the CSR; send exactly one PEM block", ErrInvalidCSR)
	}
	return ParseRawWith(block.Bytes, opts)
}

// ParseRaw is Parse for a DER-encoded CSR. In order, it refuses:
//   - anything that is not a version 1 PKCS #10 request (RFC 2986 §4) with at most one attribute, an
//     extensionRequest holding exactly one list of extensions (ErrInvalidCSR; ErrUnsupportedRequest for
//     any other attribute, such as challengePassword);
//   - a signature algorithm other than SHA-2 with RSA or ECDSA, or Ed25519 (ErrKeyPolicy);
//   - a key outside the key policy, before the signature is checked (ErrKeyPolicy, see CheckKey);
//   - a self-signature that does not verify (ErrInvalidCSR);
//   - any extension request meshca would not honour (ErrUnsupportedRequest, see checkExtensions).
func ParseRaw(der []byte) (*Request, error) { return ParseRawWith(der, Options{}) }

// ParseRawWith is ParseRaw with the key policy widened by opts: with opts.MLDSA, an ML-DSA key signed with
// its own parameter set passes the algorithm and key checks; every other rule is the same.
func ParseRawWith(der []byte, opts Options) (*Request, error) {
	c, err := x509.ParseCertificateRequest(der)
	if err == nil && c.PublicKey == nil && opts.Composite { // a key crypto/x509 does not know: composite?
		cc, cerr := composite.ParseCertificateRequest(der)
		if cerr == nil {
			return parseComposite(cc)
		}
		if !errors.Is(cerr, composite.ErrUnsupported) {
			err = cerr
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCSR, err)
	}
	if c.PublicKey == nil && !opts.Composite {
		if k, kerr := composite.ParsePKIXPublicKey(c.RawSubjectPublicKeyInfo); kerr == nil {
			if _, ok := k.(*composite.PublicKey); ok {
				return nil, fmt.Errorf("%w: the CSR's key is composite (ML-DSA + ECDSA), which this CA does not "+
					"accept: composite certificates are experimental and off (issuance.experimentalComposite)",
					ErrKeyPolicy)
			}
		}
	}
	if c.Version != 0 {
		return nil, fmt.Errorf("%w: CSR version field %d; PKCS #10 defines only version 1, encoded as 0", ErrInvalidCSR,
			c.Version)
	}
	exts, err := extensionRequest(c.RawTBSCertificateRequest)
	if err != nil {
		return nil, err
	}
	pq, isMLDSA := c.PublicKey.(*mldsa.PublicKey)
	allowed := signatureAlgorithms
	if opts.MLDSA && isMLDSA {
		allowed = mldsaSignatures
	}
	if !slices.Contains(allowed, c.SignatureAlgorithm) {
		alg := c.SignatureAlgorithm.String()
		if c.SignatureAlgorithm == x509.UnknownSignatureAlgorithm {
			alg = "an algorithm meshca does not know"
		}
		return nil, fmt.Errorf(
			"%w: the CSR is signed with %s; sign it with SHA-256 or stronger (RSA, ECDSA) or Ed25519",
			ErrKeyPolicy,
			alg,
		)
	}
	keyType, err := CheckKey(c.PublicKey)
	if opts.MLDSA && isMLDSA {
		keyType, err = checkMLDSA(pq), nil
		if c.SignatureAlgorithm.String() != keyType { // RFC 9881 §3: the key's own parameter set
			err = fmt.Errorf("%w: an %s key signed with %s", ErrKeyPolicy, keyType, c.SignatureAlgorithm)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := c.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: self-signature does not verify: %v", ErrInvalidCSR, err)
	}
	isCA, err := checkExtensions(exts, c.PublicKey)
	if err != nil {
		return nil, err
	}
	hasSubject := len(c.RawSubject) > 2 // more than an empty SEQUENCE
	return &Request{CSR: c, PublicKey: c.PublicKey, KeyType: keyType, IsCA: isCA, HasSubject: hasSubject}, nil
}

// extensionRequest returns the extensions a CSR asks for, from its DER-encoded CertificationRequestInfo.
// crypto/x509 skips attributes it does not know or cannot parse and reads only the first value of each
// extensionRequest; here every attribute must be accounted for.
func extensionRequest(tbs []byte) ([]pkix.Extension, error) {
	var info struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Attributes []asn1.RawValue `asn1:"tag:0"`
	}
	if rest, err := asn1.Unmarshal(tbs, &info); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: malformed CertificationRequestInfo", ErrInvalidCSR)
	}
	var exts []pkix.Extension
	found := false
	for i, raw := range info.Attributes {
		var attr struct {
			ID     asn1.ObjectIdentifier
			Values []asn1.RawValue `asn1:"set"`
		}
		if rest, err := asn1.Unmarshal(raw.FullBytes, &attr); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: attribute %d is malformed", ErrInvalidCSR, i)
		}
		if !attr.ID.Equal(oidExtensionRequest) {
			return nil, fmt.Errorf("%w: attribute %s; a CSR may carry only an extensionRequest",
				ErrUnsupportedRequest, oidName(attr.ID))
		}
		if found {
			return nil, fmt.Errorf("%w: more than one extensionRequest attribute", ErrInvalidCSR)
		}
		found = true
		if len(attr.Values) != 1 {
			return nil, fmt.Errorf("%w: extensionRequest holds %d values, want 1", ErrInvalidCSR, len(attr.Values))
		}
		if rest, err := asn1.Unmarshal(attr.Values[0].FullBytes, &exts); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: malformed extensionRequest", ErrInvalidCSR)
		}
	}
	return exts, nil
}

package composite

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// MaxSignedSize bounds the DER of a certificate or CSR these functions read. An ML-DSA-87 composite
// certificate is under 8 KiB; requests and meshca's certificates are smaller.
const MaxSignedSize = 64 << 10

// signed is the common outer shape of a Certificate (RFC 5280, Section 4.1) and a CertificationRequest
// (RFC 2986, Section 4.2): SEQUENCE { to-be-signed, AlgorithmIdentifier, BIT STRING }.
type signed struct {
	tbs     []byte // the DER to-be-signed element, tag and length included
	alg     asn1.ObjectIdentifier
	params  bool // the signatureAlgorithm has parameters
	algDER  []byte
	sig     []byte
	tbsBody cryptobyte.String // the content of tbs
}

func parseSigned(der []byte, what string) (*signed, error) {
	if len(der) > MaxSignedSize {
		return nil, fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrMalformed, what, len(der), MaxSignedSize)
	}
	in := cryptobyte.String(der)
	var outer, tbs cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&outer, cbasn1.SEQUENCE) || !in.Empty() || !outer.ReadASN1Element(&tbs, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("%w: %s is not a DER SEQUENCE holding a to-be-signed SEQUENCE", ErrMalformed, what)
	}
	oid, params, algDER, err := readAlgorithmIdentifier(&outer)
	if err != nil {
		return nil, fmt.Errorf("%s signatureAlgorithm: %w", what, err)
	}
	if !outer.ReadASN1BitString(&bits) || bits.BitLength%8 != 0 || !outer.Empty() {
		return nil, fmt.Errorf("%w: %s signature is not a whole-byte BIT STRING at the end", ErrMalformed, what)
	}
	s := &signed{tbs: tbs, alg: oid, params: params, algDER: algDER, sig: bits.Bytes}
	body := tbs
	if !body.ReadASN1(&s.tbsBody, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("%w: %s to-be-signed part", ErrMalformed, what)
	}
	return s, nil
}

// verify checks the signature of s with pub, a *PublicKey or an *MLDSAPublicKey (pure ML-DSA, RFC 9881,
// empty context). The signature algorithm must be the key's, with absent parameters.
func (s *signed) verify(pub crypto.PublicKey) error {
	var keyOID asn1.ObjectIdentifier
	var name string
	switch k := pub.(type) {
	case *PublicKey:
		keyOID, name = k.alg.oid, k.alg.name
	case *MLDSAPublicKey:
		keyOID, name = k.params.oid, k.params.name
	default:
		return fmt.Errorf("%w: issuer key type %T; use crypto/x509 for classical keys", ErrUnsupported, pub)
	}
	if !s.alg.Equal(keyOID) {
		return fmt.Errorf("%w: signature algorithm %s is not the %s key's", ErrInvalidSignature, s.alg, name)
	}
	if s.params {
		return errParams(s.alg)
	}
	if k, ok := pub.(*PublicKey); ok {
		return Verify(k, s.tbs, s.sig, nil)
	}
	return VerifyMLDSA(pub.(*MLDSAPublicKey), s.tbs, s.sig, nil)
}

// VerifyCertificateSignature checks the signature of a DER certificate made by issuer, a composite
// (*PublicKey) or pure ML-DSA (*MLDSAPublicKey) key, which crypto/x509 cannot do. The certificate's
// signatureAlgorithm must be the issuer key's algorithm, with absent parameters, and equal the signature field
// inside tbsCertificate (RFC 5280, Section 4.1.1.2). It checks nothing else: parse the certificate with
// crypto/x509 (which accepts composite keys and signatures as unknown algorithms) for names and validity.
func VerifyCertificateSignature(certDER []byte, issuer crypto.PublicKey) error {
	s, err := parseSigned(certDER, "certificate")
	if err != nil {
		return err
	}
	tbs := s.tbsBody
	var inner cryptobyte.String
	if !tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || !tbs.SkipASN1(cbasn1.INTEGER) ||
		!tbs.ReadASN1Element(&inner, cbasn1.SEQUENCE) {
		return fmt.Errorf("%w: tbsCertificate has no signature field", ErrMalformed)
	}
	if string(inner) != string(s.algDER) {
		return fmt.Errorf("%w: tbsCertificate signature field differs from signatureAlgorithm", ErrMalformed)
	}
	return s.verify(issuer)
}

// placeholderSigner returns a throwaway Ed25519 key for crypto/x509 to sign with (see CreateCertificate).
func placeholderSigner() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("composite: placeholder key: %w", err)
	}
	return k, nil
}

// subjectKeyID is RFC 7093 method 1, as crypto/x509 computes it: the leftmost 160 bits of the SHA-256 of the
// subjectPublicKey BIT STRING's content.
func subjectKeyID(raw []byte) []byte {
	h := sha256.Sum256(raw)
	return h[:20]
}

// CreateCertificate is crypto/x509.CreateCertificate for an issuer holding a composite key: it returns a DER
// certificate for pub (any key crypto/x509 can marshal, or a composite *PublicKey) signed by priv with the
// composite algorithm, empty context.
//
// Every field is encoded by crypto/x509 itself: it builds the certificate signed by a throwaway Ed25519 key,
// then this function replaces exactly two elements of the TBSCertificate (the signature AlgorithmIdentifier,
// and the SubjectPublicKeyInfo when pub is composite), drops the placeholder signature and signs the new
// TBSCertificate with priv. That is sound because no other field is derived from those two: the subject key
// identifier of a composite CA is computed here from the real key before crypto/x509 runs (the authority key
// identifier comes from parent.SubjectKeyId, as usual), and the result is verified before it is returned.
// parent's key, if known (PublicKey or RawSubjectPublicKeyInfo), must be priv's.
func CreateCertificate(rand io.Reader, template, parent *x509.Certificate, pub crypto.PublicKey,
	priv *PrivateKey) ([]byte, error) {
	if template == nil || parent == nil || priv == nil {
		return nil, fmt.Errorf("%w: template, parent and priv are required", ErrUnsupported)
	}
	if err := checkParentKey(parent, priv); err != nil {
		return nil, err
	}
	placeholder, err := placeholderSigner()
	if err != nil {
		return nil, err
	}
	selfSigned := template == parent
	tmpl := *template
	tmpl.SignatureAlgorithm = x509.UnknownSignatureAlgorithm
	x509Pub := pub
	var spki []byte
	if cpub, ok := pub.(*PublicKey); ok {
		if spki, err = MarshalPKIXPublicKey(cpub); err != nil {
			return nil, err
		}
		x509Pub = placeholder.Public()
		if tmpl.IsCA && len(tmpl.SubjectKeyId) == 0 {
			tmpl.SubjectKeyId = subjectKeyID(cpub.raw)
		}
	}
	par := *parent
	if selfSigned {
		par = tmpl
	}
	par.PublicKey = nil // checked above; crypto/x509 would compare it with the placeholder
	der, err := x509.CreateCertificate(rand, &tmpl, &par, x509Pub, placeholder)
	if err != nil {
		return nil, fmt.Errorf("composite: building the certificate: %w", err)
	}
	s, err := parseSigned(der, "certificate")
	if err != nil {
		return nil, err
	}
	// TBSCertificate: version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
	replace := map[int][]byte{2: algorithmIdentifier(priv.pub.alg.oid)}
	if spki != nil {
		replace[6] = spki
	}
	out, err := resign(rand, s.tbsBody, replace, priv)
	if err != nil {
		return nil, err
	}
	if err := VerifyCertificateSignature(out, priv.pub); err != nil {
		return nil, fmt.Errorf("composite: the new certificate does not verify: %w", err)
	}
	return out, nil
}

// checkParentKey makes sure a parent whose key is known holds priv's public key.
func checkParentKey(parent *x509.Certificate, priv *PrivateKey) error {
	switch {
	case parent.PublicKey != nil:
		if !priv.pub.Equal(parent.PublicKey) {
			return fmt.Errorf("%w: the parent's public key is not priv's", ErrUnsupported)
		}
	case len(parent.RawSubjectPublicKeyInfo) > 0:
		pk, err := ParsePKIXPublicKey(parent.RawSubjectPublicKeyInfo)
		if err != nil {
			return fmt.Errorf("parent certificate key: %w", err)
		}
		if !priv.pub.Equal(pk) {
			return fmt.Errorf("%w: the parent's public key is not priv's", ErrUnsupported)
		}
	}
	return nil
}

// resign rebuilds a to-be-signed SEQUENCE from the elements of body, replacing those at the given indexes,
// and returns SEQUENCE { tbs, composite AlgorithmIdentifier, BIT STRING signature } signed by priv.
func resign(rand io.Reader, body cryptobyte.String, replace map[int][]byte, priv *PrivateKey) ([]byte, error) {
	var tb cryptobyte.Builder
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for i := 0; !body.Empty(); i++ {
			var el cryptobyte.String
			var tag cbasn1.Tag
			if !body.ReadAnyASN1Element(&el, &tag) {
				b.SetError(fmt.Errorf("%w: to-be-signed element %d", ErrMalformed, i))
				return
			}
			if r, ok := replace[i]; ok {
				b.AddBytes(r)
				delete(replace, i)
			} else {
				b.AddBytes(el)
			}
		}
	})
	tbs, err := tb.Bytes()
	if err != nil {
		return nil, err
	}
	if len(replace) != 0 {
		return nil, fmt.Errorf("%w: to-be-signed structure is shorter than expected", ErrMalformed)
	}
	sig, err := priv.Sign(rand, tbs, nil)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		addAlgorithmIdentifier(b, priv.pub.alg.oid)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

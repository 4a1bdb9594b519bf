package composite

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"net"
	"net/url"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidExtensionRequest    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14} // PKCS #9, RFC 2985
	oidExtensionSubjectAlt = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// ParseCertificateRequest parses a DER PKCS #10 request (RFC 2986) whose key is composite, which
// crypto/x509.ParseCertificateRequest refuses, and verifies its self-signature: the request must be signed
// with its own key's composite algorithm (empty context). The result is a crypto/x509 request with PublicKey
// set to the *PublicKey, the subject, the requested extensions, and the URI, DNS, e-mail and IP SANs of the
// extensionRequest attribute; SignatureAlgorithm and PublicKeyAlgorithm are Unknown, so its CheckSignature
// method fails closed. Other key types are ErrUnsupported: parse them with crypto/x509.
func ParseCertificateRequest(der []byte) (*x509.CertificateRequest, error) {
	der = bytes.Clone(der)
	s, err := parseSigned(der, "CSR")
	if err != nil {
		return nil, err
	}
	info := s.tbsBody
	var version int64
	var subject, spki, attrs cryptobyte.String
	var hasAttrs bool
	if !info.ReadASN1Integer(&version) || version != 0 || !info.ReadASN1Element(&subject, cbasn1.SEQUENCE) ||
		!info.ReadASN1Element(&spki, cbasn1.SEQUENCE) ||
		!info.ReadOptionalASN1(&attrs, &hasAttrs, cbasn1.Tag(0).Constructed().ContextSpecific()) || !info.Empty() {
		return nil, fmt.Errorf("%w: CSR certificationRequestInfo is not version 0 with subject, key and "+
			"attributes", ErrMalformed)
	}
	pk, err := ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, fmt.Errorf("CSR key: %w", err)
	}
	pub, ok := pk.(*PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: CSR key %T is not composite; parse it with crypto/x509", ErrUnsupported, pk)
	}
	req := &x509.CertificateRequest{
		Raw:                      der,
		RawTBSCertificateRequest: s.tbs,
		RawSubjectPublicKeyInfo:  spki,
		RawSubject:               subject,
		Signature:                s.sig,
		PublicKey:                pub,
	}
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(subject, &rdn); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: CSR subject is not a Name", ErrMalformed)
	}
	req.Subject.FillFromRDNSequence(&rdn)
	if err := parseAttributes(attrs, req); err != nil {
		return nil, err
	}
	if err := s.verify(pub); err != nil {
		return nil, fmt.Errorf("CSR self-signature: %w", err)
	}
	return req, nil
}

// parseAttributes reads the CSR attributes and, from the one extensionRequest, the extensions and SANs.
// Other attributes are ignored, as crypto/x509 does.
func parseAttributes(attrs cryptobyte.String, req *x509.CertificateRequest) error {
	seenExtReq := false
	for !attrs.Empty() {
		var attr, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) ||
			!attr.ReadASN1(&values, cbasn1.SET) || !attr.Empty() {
			return fmt.Errorf("%w: CSR attribute", ErrMalformed)
		}
		if !oid.Equal(oidExtensionRequest) {
			continue
		}
		var exts cryptobyte.String
		if seenExtReq || !values.ReadASN1(&exts, cbasn1.SEQUENCE) || !values.Empty() {
			return fmt.Errorf("%w: CSR must carry at most one extensionRequest with one value", ErrMalformed)
		}
		seenExtReq = true
		if err := parseExtensions(exts, req); err != nil {
			return err
		}
	}
	return nil
}

func parseExtensions(exts cryptobyte.String, req *x509.CertificateRequest) error {
	for !exts.Empty() {
		var ext cryptobyte.String
		var e pkix.Extension
		var value cryptobyte.String
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&e.Id) ||
			(ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&e.Critical)) ||
			!ext.ReadASN1(&value, cbasn1.OCTET_STRING) || !ext.Empty() {
			return fmt.Errorf("%w: CSR requested extension", ErrMalformed)
		}
		for _, prev := range req.Extensions {
			if prev.Id.Equal(e.Id) {
				return fmt.Errorf("%w: CSR requests extension %s twice", ErrMalformed, e.Id)
			}
		}
		e.Value = value
		req.Extensions = append(req.Extensions, e)
		if e.Id.Equal(oidExtensionSubjectAlt) {
			if err := parseSANs(value, req); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseSANs reads GeneralNames (RFC 5280, Section 4.2.1.6): rfc822Name [1], dNSName [2], URI [6] and
// iPAddress [7] fill the request; other name forms are skipped, as crypto/x509 does.
func parseSANs(value []byte, req *x509.CertificateRequest) error {
	in := cryptobyte.String(value)
	var names cryptobyte.String
	if !in.ReadASN1(&names, cbasn1.SEQUENCE) || !in.Empty() || names.Empty() {
		return fmt.Errorf("%w: CSR subjectAltName is not a non-empty GeneralNames", ErrMalformed)
	}
	for !names.Empty() {
		var name cryptobyte.String
		var tag cbasn1.Tag
		if !names.ReadAnyASN1(&name, &tag) {
			return fmt.Errorf("%w: CSR subjectAltName entry", ErrMalformed)
		}
		switch tag {
		case cbasn1.Tag(1).ContextSpecific(), cbasn1.Tag(2).ContextSpecific(), cbasn1.Tag(6).ContextSpecific():
			if !isIA5(name) {
				return fmt.Errorf("%w: CSR subjectAltName name is not IA5String", ErrMalformed)
			}
			switch tag {
			case cbasn1.Tag(1).ContextSpecific():
				req.EmailAddresses = append(req.EmailAddresses, string(name))
			case cbasn1.Tag(2).ContextSpecific():
				req.DNSNames = append(req.DNSNames, string(name))
			default:
				u, err := url.Parse(string(name))
				if err != nil {
					return fmt.Errorf("%w: CSR subjectAltName URI does not parse", ErrMalformed)
				}
				req.URIs = append(req.URIs, u)
			}
		case cbasn1.Tag(7).ContextSpecific():
			if len(name) != net.IPv4len && len(name) != net.IPv6len {
				return fmt.Errorf("%w: CSR subjectAltName IP address of %d bytes", ErrMalformed, len(name))
			}
			req.IPAddresses = append(req.IPAddresses, net.IP(bytes.Clone(name)))
		}
	}
	return nil
}

func isIA5(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// CreateCertificateRequest is crypto/x509.CreateCertificateRequest for a composite key: it returns a DER
// PKCS #10 request for priv's public key, self-signed by priv (empty context). As in CreateCertificate,
// crypto/x509 encodes every field from template with a throwaway Ed25519 key; this function then replaces the
// SubjectPublicKeyInfo (the only field derived from the key), signs the new certificationRequestInfo with priv
// and checks the result with ParseCertificateRequest.
func CreateCertificateRequest(rand io.Reader, template *x509.CertificateRequest, priv *PrivateKey) ([]byte,
	error) {
	if template == nil || priv == nil {
		return nil, fmt.Errorf("%w: template and priv are required", ErrUnsupported)
	}
	placeholder, err := placeholderSigner()
	if err != nil {
		return nil, err
	}
	tmpl := *template
	tmpl.SignatureAlgorithm = x509.UnknownSignatureAlgorithm
	der, err := x509.CreateCertificateRequest(rand, &tmpl, placeholder)
	if err != nil {
		return nil, fmt.Errorf("composite: building the CSR: %w", err)
	}
	s, err := parseSigned(der, "CSR")
	if err != nil {
		return nil, err
	}
	spki, err := MarshalPKIXPublicKey(priv.pub)
	if err != nil {
		return nil, err
	}
	// CertificationRequestInfo: version, subject, subjectPKInfo, attributes.
	out, err := resign(rand, s.tbsBody, map[int][]byte{2: spki}, priv)
	if err != nil {
		return nil, err
	}
	if _, err := ParseCertificateRequest(out); err != nil {
		return nil, fmt.Errorf("composite: the new CSR does not parse: %w", err)
	}
	return out, nil
}

package csr

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
)

// The extension requests a CSR may carry (RFC 5280 §4.2.1), each limited to what a workload certificate
// holds. meshca never copies an extension from a CSR into a certificate: the issuance core builds every
// certificate from its own profile. A request is honoured only if the profile already grants it.
var (
	oidSubjectAltName       = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage             = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage          = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidBasicConstraints     = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidSubjectKeyIdentifier = asn1.ObjectIdentifier{2, 5, 29, 14}

	oidServerAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidClientAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
)

// oidNames names the OIDs that CSRs are known to carry, for messages that name what was refused.
var oidNames = map[string]string{
	"2.5.29.9": "subjectDirectoryAttributes", "2.5.29.18": "issuerAltName", "2.5.29.30": "nameConstraints",
	"2.5.29.31": "cRLDistributionPoints", "2.5.29.32": "certificatePolicies", "2.5.29.33": "policyMappings",
	"2.5.29.35": "authorityKeyIdentifier", "2.5.29.36": "policyConstraints", "2.5.29.54": "inhibitAnyPolicy",
	"2.5.29.37.0": "anyExtendedKeyUsage", "1.3.6.1.5.5.7.1.1": "authorityInfoAccess",
	"1.3.6.1.5.5.7.1.11": "subjectInfoAccess", "1.3.6.1.5.5.7.1.24": "tlsFeature",
	"1.3.6.1.5.5.7.48.1.5": "id-pkix-ocsp-nocheck", "1.3.6.1.5.5.7.3.3": "codeSigning",
	"1.3.6.1.5.5.7.3.4": "emailProtection", "1.3.6.1.5.5.7.3.8": "timeStamping", "1.3.6.1.5.5.7.3.9": "OCSPSigning",
	"1.2.840.113549.1.9.2": "unstructuredName", "1.2.840.113549.1.9.7": "challengePassword",
}

// oidName is how messages show an OID a caller sent: by name when known, bounded in length always.
func oidName(o asn1.ObjectIdentifier) string {
	s := o.String()
	if n, ok := oidNames[s]; ok {
		return n + " (" + s + ")"
	}
	return bounded(s)
}

// bounded cuts a caller-supplied string to a length fit for a message.
func bounded(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// checkExtensions refuses any extension request outside the allow-list, and any allowed one asking for more
// than a workload certificate holds. It reports whether basicConstraints asked for cA=TRUE, which the
// issuance policy refuses with its own reason.
func checkExtensions(exts []pkix.Extension, pub crypto.PublicKey) (isCA bool, err error) {
	for _, e := range exts {
		switch {
		case e.Id.Equal(oidSubjectAltName):
			err = checkSAN(e.Value)
		case e.Id.Equal(oidKeyUsage):
			err = checkKeyUsage(e.Value, pub)
		case e.Id.Equal(oidExtKeyUsage):
			err = checkExtKeyUsage(e.Value)
		case e.Id.Equal(oidBasicConstraints):
			isCA, err = checkBasicConstraints(e.Value)
		case e.Id.Equal(oidSubjectKeyIdentifier):
			err = checkSubjectKeyID(e.Value)
		default:
			kind := "extension"
			if e.Critical {
				kind = "critical extension"
			}
			err = fmt.Errorf("%w: %s %s; a CSR may ask only for subjectAltName, keyUsage, extKeyUsage, "+
				"basicConstraints (cA=FALSE) and subjectKeyIdentifier", ErrUnsupportedRequest, kind, oidName(e.Id))
		}
		if err != nil {
			return false, err
		}
	}
	return isCA, nil
}

// GeneralName tags (RFC 5280 §4.2.1.6).
const (
	tagOtherName     = 0
	tagRFC822Name    = 1
	tagDNSName       = 2
	tagX400Address   = 3
	tagDirectoryName = 4
	tagEDIPartyName  = 5
	tagURI           = 6
	tagIPAddress     = 7
	tagRegisteredID  = 8
)

var unsupportedNames = map[int]string{tagOtherName: "otherName", tagX400Address: "x400Address",
	tagDirectoryName: "directoryName", tagEDIPartyName: "ediPartyName", tagRegisteredID: "registeredID"}

// checkSAN reads the GeneralNames itself: crypto/x509 keeps DNS, email, URI and IP names and silently drops
// every other kind, so a CSR could ask for an otherName (a Windows UPN, say) that meshca would not see.
// Email and IP names pass here; the issuance policy refuses them as forbidden SANs.
func checkSAN(v []byte) error {
	var names []asn1.RawValue
	if rest, err := asn1.Unmarshal(v, &names); err != nil || len(rest) != 0 {
		return fmt.Errorf("%w: malformed subjectAltName", ErrInvalidCSR)
	}
	if len(names) == 0 {
		return fmt.Errorf("%w: empty subjectAltName; RFC 5280 requires at least one name", ErrInvalidCSR)
	}
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific {
			return fmt.Errorf("%w: a subjectAltName entry is not a GeneralName", ErrInvalidCSR)
		}
		switch n.Tag {
		case tagRFC822Name, tagDNSName, tagURI, tagIPAddress:
			if n.IsCompound {
				return fmt.Errorf("%w: a subjectAltName entry of tag [%d] is constructed", ErrInvalidCSR, n.Tag)
			}
		case tagOtherName, tagX400Address, tagDirectoryName, tagEDIPartyName, tagRegisteredID:
			return fmt.Errorf("%w: %s SAN; meshca issues the caller's SPIFFE ID (URI) and allowed DNS names only",
				ErrUnsupportedRequest, unsupportedNames[n.Tag])
		default:
			return fmt.Errorf("%w: subjectAltName tag [%d] is not a GeneralName", ErrInvalidCSR, n.Tag)
		}
	}
	return nil
}

var keyUsageNames = []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment",
	"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}

// Key usage bits a workload certificate has (RFC 5280 §4.2.1.3): digitalSignature, and keyEncipherment for
// RSA keys (TLS 1.2 RSA key exchange).
const (
	kuDigitalSignature = 0
	kuKeyEncipherment  = 2
)

func checkKeyUsage(v []byte, pub crypto.PublicKey) error {
	var bits asn1.BitString
	if rest, err := asn1.Unmarshal(v, &bits); err != nil || len(rest) != 0 {
		return fmt.Errorf("%w: malformed keyUsage", ErrInvalidCSR)
	}
	_, isRSA := pub.(*rsa.PublicKey)
	set := false
	for i := range bits.BitLength {
		if bits.At(i) == 0 {
			continue
		}
		set = true
		if i == kuDigitalSignature || (i == kuKeyEncipherment && isRSA) {
			continue
		}
		name := fmt.Sprintf("bit %d", i)
		if i < len(keyUsageNames) {
			name = keyUsageNames[i]
		}
		return fmt.Errorf("%w: keyUsage %s; a workload certificate has digitalSignature, and keyEncipherment "+
			"for RSA keys, only", ErrUnsupportedRequest, name)
	}
	if !set {
		return fmt.Errorf("%w: keyUsage with no bit set", ErrInvalidCSR)
	}
	return nil
}

func checkExtKeyUsage(v []byte) error {
	var purposes []asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(v, &purposes); err != nil || len(rest) != 0 {
		return fmt.Errorf("%w: malformed extKeyUsage", ErrInvalidCSR)
	}
	if len(purposes) == 0 {
		return fmt.Errorf("%w: empty extKeyUsage", ErrInvalidCSR)
	}
	for _, p := range purposes {
		if !p.Equal(oidServerAuth) && !p.Equal(oidClientAuth) {
			return fmt.Errorf("%w: extKeyUsage %s; a workload certificate has serverAuth and clientAuth only",
				ErrUnsupportedRequest, oidName(p))
		}
	}
	return nil
}

// checkBasicConstraints reads basicConstraints (RFC 5280 §4.2.1.9). cA=TRUE is reported, not refused here;
// a pathLenConstraint without cA is meaningless and refused.
func checkBasicConstraints(v []byte) (isCA bool, err error) {
	var bc struct {
		IsCA    bool          `asn1:"optional"`
		PathLen asn1.RawValue `asn1:"optional"`
	}
	if rest, err := asn1.Unmarshal(v, &bc); err != nil || len(rest) != 0 {
		return false, fmt.Errorf("%w: malformed basicConstraints", ErrInvalidCSR)
	}
	if bc.PathLen.FullBytes != nil && (bc.PathLen.Class != asn1.ClassUniversal || bc.PathLen.Tag != asn1.TagInteger) {
		return false, fmt.Errorf("%w: malformed basicConstraints pathLenConstraint", ErrInvalidCSR)
	}
	if bc.PathLen.FullBytes != nil && !bc.IsCA {
		return false, fmt.Errorf("%w: basicConstraints pathLenConstraint without cA", ErrUnsupportedRequest)
	}
	return bc.IsCA, nil
}

// checkSubjectKeyID accepts a well-formed subjectKeyIdentifier (RFC 5280 §4.2.1.2); meshca computes its own.
func checkSubjectKeyID(v []byte) error {
	var id []byte
	if rest, err := asn1.Unmarshal(v, &id); err != nil || len(rest) != 0 || len(id) == 0 {
		return fmt.Errorf("%w: malformed subjectKeyIdentifier", ErrInvalidCSR)
	}
	return nil
}

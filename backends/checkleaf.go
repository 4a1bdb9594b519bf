package backends

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Extensions a workload certificate may carry (RFC 5280 §4.2). Anything else in a leaf, such as
// id-pkix-ocsp-nocheck, certificate policies, name constraints, SCTs or a CA's private extensions, is refused.
var (
	oidSubjectKeyID     = asn1.ObjectIdentifier{2, 5, 29, 14}              // §4.2.1.2
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}              // §4.2.1.3
	oidSubjectAltName   = asn1.ObjectIdentifier{2, 5, 29, 17}              // §4.2.1.6
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}              // §4.2.1.9
	oidCRLDistribution  = asn1.ObjectIdentifier{2, 5, 29, 31}              // §4.2.1.13
	oidAuthorityKeyID   = asn1.ObjectIdentifier{2, 5, 29, 35}              // §4.2.1.1
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}              // §4.2.1.12
	oidAuthorityInfo    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1} // §4.2.2.1

	allowedLeafExtensions = []asn1.ObjectIdentifier{oidSubjectKeyID, oidAuthorityKeyID, oidKeyUsage, oidExtKeyUsage,
		oidBasicConstraints, oidSubjectAltName, oidCRLDistribution, oidAuthorityInfo}
)

// CheckLeaf checks that chain[0], the certificate a backend issued for req, is exactly the workload certificate
// that was asked for and grants nothing more. Every backend calls it before returning a chain, and the issuance
// core calls it again on every answer: a CA that copies content from the CSR (Vault's sign-verbatim, a role
// with use_csr_sans, a permissive step-ca template) would otherwise hand a workload powers nobody granted, such
// as a subject of O=system:masters, an otherName SAN or the codeSigning usage.
//
// The contract; a leaf breaking any rule gives an error wrapping ErrBadChain that names the rule:
//   - chain holds at least the leaf and its issuer (chain[1]);
//   - the leaf certifies exactly req.PublicKey (a composite key is read from the raw SubjectPublicKeyInfo,
//     which crypto/x509 leaves unparsed; every other rule reads the fields crypto/x509 parses for any key);
//   - its subject holds exactly the attributes of req.Subject, in any order (none when req.Subject is empty);
//   - its subjectAltName extension holds exactly req.URIs, req.DNSNames and req.IPAddresses, in any order, and no
//     name of another kind (otherName, rfc822Name, x400Address, directoryName, ediPartyName, registeredID); the
//     raw extension is read, so names that crypto/x509 does not expose are caught too;
//   - it is not a CA: basicConstraints is absent or has cA=false;
//   - keyUsage holds digitalSignature and nothing else, except keyEncipherment for an RSA key;
//   - extKeyUsage is present and holds only serverAuth and/or clientAuth;
//   - it carries no extension other than subjectKeyIdentifier, authorityKeyIdentifier, keyUsage,
//     extKeyUsage, basicConstraints, subjectAltName, cRLDistributionPoints and authorityInfoAccess;
//   - a cRLDistributionPoints extension is non-critical and in its plain form: distribution points named by
//     fullName URIs (http, https or ldap) only, without reasons or a cRLIssuer (CheckLeafFrom further holds a
//     DistributionPointer's leaves to exactly its URLs);
//   - its notAfter is not later than its issuer's.
//
// CheckLeaf verifies no signature and no path to a trust anchor: that needs the backend's roots.
func CheckLeaf(req *SignRequest, chain []*x509.Certificate) error {
	return checkLeaf(leafRules, req, chain, cdpRule{})
}

// leafRule is one rule of CheckLeaf's contract. Each is a separate function so that the tests can show
// that every tampered leaf is caught by its own rule and by no other.
type leafRule struct {
	name  string
	check func(in *leafInput) error
}

// leafInput is what a rule checks: the leaf and its issuer against the request, and the cRLDistributionPoints
// the signing backend is known to write.
type leafInput struct {
	req          *SignRequest
	leaf, issuer *x509.Certificate
	cdp          cdpRule
}

var leafRules = []leafRule{
	{"public key", checkLeafKey},
	{"subject", checkLeafSubject},
	{"subject alternative names", checkLeafSANs},
	{"basic constraints", checkLeafNotCA},
	{"key usage", checkLeafKeyUsage},
	{"extended key usage", checkLeafExtKeyUsage},
	{"extensions", checkLeafExtensions},
	{"CRL distribution points", checkLeafCDP},
	{"validity", checkLeafValidity},
}

func checkLeaf(rules []leafRule, req *SignRequest, chain []*x509.Certificate, cdp cdpRule) error {
	if req == nil {
		return fmt.Errorf("%w: no request to check the leaf against", ErrBadChain)
	}
	if len(chain) < 2 || chain[0] == nil || chain[1] == nil {
		return fmt.Errorf("%w: the chain must hold at least the leaf and its issuer, got %d certificates",
			ErrBadChain, len(chain))
	}
	for _, r := range rules {
		if err := r.check(&leafInput{req: req, leaf: chain[0], issuer: chain[1], cdp: cdp}); err != nil {
			return fmt.Errorf("%w: leaf %s: %w", ErrBadChain, r.name, err)
		}
	}
	return nil
}

// SameKey reports whether a and b are the same public key. Keys of types without an Equal method are never
// the same.
func SameKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && b != nil && k.Equal(b)
}

func checkLeafKey(in *leafInput) error {
	req, leaf := in.req, in.leaf
	if key := CertificateKey(leaf); !SameKey(key, req.PublicKey) {
		return fmt.Errorf("the leaf certifies a %T key other than the requested one", key)
	}
	return nil
}

func checkLeafSubject(in *leafInput) error {
	req, leaf := in.req, in.leaf
	var got pkix.RDNSequence
	if rest, err := asn1.Unmarshal(leaf.RawSubject, &got); err != nil || len(rest) > 0 {
		return fmt.Errorf("the subject does not parse: %v", err)
	}
	if have, want := attributes(got), attributes(req.Subject.ToRDNSequence()); !slices.Equal(have, want) {
		return fmt.Errorf("subject %s, want %s", bounded(strings.Join(have, ",")), bounded(strings.Join(want, ",")))
	}
	return nil
}

// attributes lists a name's attributes as sorted type=value strings.
func attributes(rdns pkix.RDNSequence) []string {
	var out []string
	for _, rdn := range rdns {
		for _, atv := range rdn {
			out = append(out, fmt.Sprintf("%s=%v", atv.Type, atv.Value))
		}
	}
	slices.Sort(out)
	return out
}

func checkLeafSANs(in *leafInput) error {
	req, leaf := in.req, in.leaf
	var names generalNames
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			var err error
			if names, err = parseGeneralNames(ext.Value); err != nil {
				return err
			}
		}
	}
	if len(names.other) > 0 {
		return fmt.Errorf("the subjectAltName holds names that were not requested: %s",
			bounded(strings.Join(names.other, ", ")))
	}
	want := uriStrings(req.URIs)
	if !sameSet(names.uris, want) {
		return fmt.Errorf("URI SANs %s, want %s", bounded(strings.Join(names.uris, " ")),
			bounded(strings.Join(want, " ")))
	}
	if !sameSet(names.dnsNames, req.DNSNames) {
		return fmt.Errorf("DNS SANs %s, want %s", bounded(strings.Join(names.dnsNames, " ")),
			bounded(strings.Join(req.DNSNames, " ")))
	}
	if !sameSet(ipStrings(names.ips), ipStrings(req.IPAddresses)) {
		return fmt.Errorf("IP SANs %v, want %v", ipStrings(names.ips), ipStrings(req.IPAddresses))
	}
	return nil
}

func checkLeafNotCA(in *leafInput) error {
	leaf := in.leaf
	if leaf.IsCA {
		return fmt.Errorf("the leaf is a CA certificate (basicConstraints cA=true)")
	}
	return nil
}

func checkLeafKeyUsage(in *leafInput) error {
	req, leaf := in.req, in.leaf
	allowed := x509.KeyUsageDigitalSignature
	if _, ok := req.PublicKey.(*rsa.PublicKey); ok {
		allowed |= x509.KeyUsageKeyEncipherment
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("keyUsage %#x lacks digitalSignature", int(leaf.KeyUsage))
	}
	if extra := leaf.KeyUsage &^ allowed; extra != 0 {
		return fmt.Errorf("keyUsage %#x grants %#x beyond digitalSignature (and keyEncipherment for RSA keys)",
			int(leaf.KeyUsage), int(extra))
	}
	return nil
}

func checkLeafExtKeyUsage(in *leafInput) error {
	leaf := in.leaf
	if len(leaf.ExtKeyUsage)+len(leaf.UnknownExtKeyUsage) == 0 {
		return fmt.Errorf("no extKeyUsage: the leaf would be good for any purpose")
	}
	if len(leaf.UnknownExtKeyUsage) > 0 {
		return fmt.Errorf("extKeyUsage holds %v beyond serverAuth and clientAuth", leaf.UnknownExtKeyUsage)
	}
	for _, u := range leaf.ExtKeyUsage {
		if u != x509.ExtKeyUsageServerAuth && u != x509.ExtKeyUsageClientAuth {
			return fmt.Errorf("extKeyUsage holds %s beyond serverAuth and clientAuth", ekuName(u))
		}
	}
	return nil
}

func ekuName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageAny:
		return "anyExtendedKeyUsage"
	case x509.ExtKeyUsageCodeSigning:
		return "codeSigning"
	case x509.ExtKeyUsageEmailProtection:
		return "emailProtection"
	case x509.ExtKeyUsageTimeStamping:
		return "timeStamping"
	case x509.ExtKeyUsageOCSPSigning:
		return "OCSPSigning"
	}
	return fmt.Sprintf("x509.ExtKeyUsage(%d)", int(u))
}

func checkLeafExtensions(in *leafInput) error {
	leaf := in.leaf
	for _, ext := range leaf.Extensions {
		if !slices.ContainsFunc(allowedLeafExtensions, ext.Id.Equal) {
			return fmt.Errorf("extension %s (critical=%v) is not one a workload certificate may carry", ext.Id,
				ext.Critical)
		}
	}
	return nil
}

func checkLeafValidity(in *leafInput) error {
	leaf, issuer := in.leaf, in.issuer
	if leaf.NotAfter.After(issuer.NotAfter) {
		return fmt.Errorf("notAfter %s is past its issuer's %s", leaf.NotAfter.UTC().Format(time.RFC3339),
			issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// CSRNamesExactly reports whether req.CSR asks for exactly the SANs meshca decided: the same URIs, DNS names
// and IP addresses, in any order, and no email address. A backend that copies the CSR's SANs (Vault's
// sign-verbatim) may sign only such a request.
func (req *SignRequest) CSRNamesExactly() bool {
	c := req.CSR
	return c != nil && len(c.EmailAddresses) == 0 &&
		sameSet(uriStrings(c.URIs), uriStrings(req.URIs)) && sameSet(c.DNSNames, req.DNSNames) &&
		sameSet(ipStrings(c.IPAddresses), ipStrings(req.IPAddresses))
}

func uriStrings(us []*url.URL) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

// sameSet reports whether a and b hold the same strings with the same multiplicity, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// maxShown bounds the certificate content quoted in an error: it may come from a caller's CSR.
const maxShown = 160

func bounded(s string) string {
	if len(s) > maxShown {
		s = s[:maxShown] + "..."
	}
	return fmt.Sprintf("%q", s)
}

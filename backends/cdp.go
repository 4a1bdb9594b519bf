package backends

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// DistributionPointer is implemented by a backend that puts configured CRL distribution points in every leaf
// it signs (the file backend). The issuance core then holds that backend's leaves to exactly those URLs
// (CheckLeafFrom).
type DistributionPointer interface {
	// CRLDistributionPoints returns the URLs that the cRLDistributionPoints extension of the backend's leaf
	// for req names; none means that leaf carries no such extension. The caller must not modify the slice.
	CRLDistributionPoints(req *SignRequest) []string
}

// CheckLeafFrom is CheckLeaf for a leaf that backend b signed. When b is a DistributionPointer, the leaf's
// cRLDistributionPoints extension must name exactly b's URLs, or be absent when b has none. For every other
// backend (Vault and step-ca add the URLs their own configuration names) CheckLeaf's rule holds: the extension
// may be present, in its plain form.
func CheckLeafFrom(b Backend, req *SignRequest, chain []*x509.Certificate) error {
	want := cdpRule{}
	if dp, ok := b.(DistributionPointer); ok {
		want = cdpRule{exact: true, urls: dp.CRLDistributionPoints(req)}
	}
	return checkLeaf(leafRules, req, chain, want)
}

// cdpRule is what a leaf's cRLDistributionPoints must hold: exactly urls when exact, else any URLs in the
// plain form.
type cdpRule struct {
	exact bool
	urls  []string
}

// MaxDistributionPoints bounds the URLs of a cRLDistributionPoints extension meshca writes or accepts.
const MaxDistributionPoints = 8

// maxDistributionPointURL bounds the length of one distribution point URL.
const maxDistributionPointURL = 1024

// ValidateDistributionPoints checks URLs for a leaf's cRLDistributionPoints extension: at most
// MaxDistributionPoints absolute http or ldap URLs without user information or fragment, each at most 1024
// bytes, no duplicates. RFC 5280 §4.2.1.13: an http URL must name one DER-encoded CRL; https is refused
// because fetching the CRL would need a TLS certificate whose revocation is checked with that same CRL.
func ValidateDistributionPoints(urls []string) error {
	if len(urls) > MaxDistributionPoints {
		return fmt.Errorf("%d CRL distribution points; at most %d", len(urls), MaxDistributionPoints)
	}
	seen := map[string]bool{}
	for _, s := range urls {
		if err := checkDistributionPoint(s, "http", "ldap"); err != nil {
			return err
		}
		if seen[s] {
			return fmt.Errorf("CRL distribution point %s is listed twice", bounded(s))
		}
		seen[s] = true
	}
	return nil
}

// checkDistributionPoint checks one URL of a cRLDistributionPoints extension against the given schemes.
func checkDistributionPoint(s string, schemes ...string) error {
	if len(s) > maxDistributionPointURL {
		return fmt.Errorf("CRL distribution point %s is longer than %d bytes", bounded(s), maxDistributionPointURL)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("CRL distribution point %s does not parse as a URL", bounded(s))
	}
	if !slices.Contains(schemes, u.Scheme) || u.Host == "" || u.User != nil || u.Fragment != "" ||
		strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("CRL distribution point %s: want an absolute %s URL with a host, no user information "+
			"and no fragment", bounded(s), strings.Join(schemes, " or "))
	}
	return nil
}

// Tags of DistributionPoint and DistributionPointName, RFC 5280 §4.2.1.13.
const (
	tagDistributionPoint = 0 // DistributionPoint.distributionPoint
	tagFullName          = 0 // DistributionPointName.fullName
)

// parseDistributionPoints reads the DER value of a cRLDistributionPoints extension and returns its URLs. It
// accepts only the plain form meshca and common CAs write: each DistributionPoint holds a fullName of URI
// names and nothing else. Reasons, a cRLIssuer (an indirect CRL) or a name relative to the CRL issuer would
// change which CRL a relying party consults, and are refused.
func parseDistributionPoints(der []byte) ([]string, error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	switch {
	case err != nil:
		return nil, fmt.Errorf("the cRLDistributionPoints do not parse: %v", err)
	case len(rest) > 0:
		return nil, errors.New("the cRLDistributionPoints have trailing data")
	case seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound:
		return nil, errors.New("the cRLDistributionPoints are not a SEQUENCE")
	}
	var urls []string
	for data := seq.Bytes; len(data) > 0; {
		var dp asn1.RawValue
		if data, err = asn1.Unmarshal(data, &dp); err != nil {
			return nil, fmt.Errorf("a distribution point does not parse: %v", err)
		}
		if dp.Class != asn1.ClassUniversal || dp.Tag != asn1.TagSequence || !dp.IsCompound {
			return nil, errors.New("a distribution point is not a SEQUENCE")
		}
		us, err := parseDistributionPoint(dp.Bytes)
		if err != nil {
			return nil, err
		}
		urls = append(urls, us...)
	}
	if len(urls) == 0 {
		return nil, errors.New("the cRLDistributionPoints name no URL")
	}
	return urls, nil
}

// parseDistributionPoint reads the fields of one DistributionPoint: exactly a [0] distributionPoint holding
// a [0] fullName of URI names.
func parseDistributionPoint(fields []byte) ([]string, error) {
	var name asn1.RawValue
	rest, err := asn1.Unmarshal(fields, &name)
	switch {
	case err != nil:
		return nil, fmt.Errorf("a distribution point does not parse: %v", err)
	case name.Class != asn1.ClassContextSpecific || name.Tag != tagDistributionPoint || !name.IsCompound:
		return nil, fmt.Errorf("a distribution point holds field [%d] and no distributionPoint name", name.Tag)
	case len(rest) > 0:
		return nil, errors.New("a distribution point holds reasons or a cRLIssuer beside its name")
	}
	var full asn1.RawValue
	rest, err = asn1.Unmarshal(name.Bytes, &full)
	switch {
	case err != nil:
		return nil, fmt.Errorf("a distribution point name does not parse: %v", err)
	case len(rest) > 0:
		return nil, errors.New("a distribution point name has trailing data")
	case full.Class != asn1.ClassContextSpecific || full.Tag != tagFullName || !full.IsCompound:
		return nil, errors.New("a distribution point is named relative to the CRL issuer, not by fullName")
	}
	var names generalNames
	for data := full.Bytes; len(data) > 0; {
		var n asn1.RawValue
		if data, err = asn1.Unmarshal(data, &n); err != nil {
			return nil, fmt.Errorf("a distribution point's fullName does not parse: %v", err)
		}
		if n.Class != asn1.ClassContextSpecific {
			return nil, fmt.Errorf("a distribution point's fullName has class %d, not a GeneralName", n.Class)
		}
		if err := names.add(n); err != nil {
			return nil, err
		}
	}
	if len(names.other)+len(names.dnsNames)+len(names.ips) > 0 || len(names.uris) == 0 {
		return nil, errors.New("a distribution point's fullName holds names other than URIs")
	}
	return names.uris, nil
}

// checkLeafCDP is the cRLDistributionPoints rule of CheckLeaf and CheckLeafFrom.
func checkLeafCDP(in *leafInput) error {
	var got []string
	found := false
	for _, ext := range in.leaf.Extensions {
		if !ext.Id.Equal(oidCRLDistribution) {
			continue
		}
		if ext.Critical {
			return errors.New("the cRLDistributionPoints extension is critical (RFC 5280 §4.2.1.13: SHOULD not be)")
		}
		var err error
		if got, err = parseDistributionPoints(ext.Value); err != nil {
			return err
		}
		found = true
	}
	if in.cdp.exact {
		if !sameSet(got, in.cdp.urls) {
			return fmt.Errorf("cRLDistributionPoints %s, want %s", bounded(strings.Join(got, " ")),
				bounded(strings.Join(in.cdp.urls, " ")))
		}
		return nil
	}
	if !found {
		return nil
	}
	for _, u := range got {
		// A remote CA's own configuration may name https URLs; meshca's configuration may not (above).
		if err := checkDistributionPoint(u, "http", "https", "ldap"); err != nil {
			return err
		}
	}
	if len(got) > MaxDistributionPoints {
		return fmt.Errorf("%d CRL distribution points; at most %d", len(got), MaxDistributionPoints)
	}
	return nil
}

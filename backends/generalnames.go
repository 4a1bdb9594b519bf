package backends

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
)

// generalNames is a subjectAltName extension sorted by kind of name (RFC 5280 §4.2.1.6).
type generalNames struct {
	uris, dnsNames []string
	ips            []net.IP
	// other describes each name of any other kind: otherName (with its type-id), rfc822Name, x400Address,
	// directoryName, ediPartyName, registeredID.
	other []string
}

// GeneralName tags, RFC 5280 §4.2.1.6.
const (
	tagOtherName     = 0
	tagRFC822Name    = 1
	tagX400Address   = 3
	tagDirectoryName = 4
	tagEDIPartyName  = 5
	tagDNSName       = 2
	tagURI           = 6
	tagIPAddress     = 7
	tagRegisteredID  = 8
)

// parseGeneralNames reads the DER value of a subjectAltName extension: a SEQUENCE OF GeneralName. Unlike
// crypto/x509, which keeps only DNS, email, IP and URI names, it reports every name, so that names a
// workload certificate must not carry cannot pass unseen.
func parseGeneralNames(der []byte) (generalNames, error) {
	var out generalNames
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	switch {
	case err != nil:
		return out, fmt.Errorf("the subjectAltName does not parse: %v", err)
	case len(rest) > 0:
		return out, errors.New("the subjectAltName has trailing data")
	case seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound:
		return out, errors.New("the subjectAltName is not a SEQUENCE")
	}
	for data := seq.Bytes; len(data) > 0; {
		var n asn1.RawValue
		if data, err = asn1.Unmarshal(data, &n); err != nil {
			return out, fmt.Errorf("a subjectAltName entry does not parse: %v", err)
		}
		if n.Class != asn1.ClassContextSpecific {
			return out, fmt.Errorf("a subjectAltName entry has class %d, not a GeneralName", n.Class)
		}
		if err := out.add(n); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (g *generalNames) add(n asn1.RawValue) error {
	primitive := func(kind string) error {
		if n.IsCompound {
			return fmt.Errorf("a %s SAN is constructed", kind)
		}
		return nil
	}
	switch n.Tag {
	case tagDNSName:
		if err := primitive("DNS"); err != nil {
			return err
		}
		g.dnsNames = append(g.dnsNames, string(n.Bytes))
	case tagURI:
		if err := primitive("URI"); err != nil {
			return err
		}
		g.uris = append(g.uris, string(n.Bytes))
	case tagIPAddress:
		if err := primitive("IP"); err != nil {
			return err
		}
		if len(n.Bytes) != net.IPv4len && len(n.Bytes) != net.IPv6len {
			return fmt.Errorf("an IP SAN has %d bytes", len(n.Bytes))
		}
		g.ips = append(g.ips, net.IP(n.Bytes))
	case tagOtherName:
		var typeID asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(n.Bytes, &typeID); err != nil {
			g.other = append(g.other, "otherName (unparsable type-id)")
		} else {
			g.other = append(g.other, "otherName "+typeID.String())
		}
	case tagRFC822Name:
		g.other = append(g.other, "rfc822Name "+string(n.Bytes))
	case tagX400Address:
		g.other = append(g.other, "x400Address")
	case tagDirectoryName:
		g.other = append(g.other, "directoryName")
	case tagEDIPartyName:
		g.other = append(g.other, "ediPartyName")
	case tagRegisteredID:
		g.other = append(g.other, "registeredID")
	default:
		g.other = append(g.other, fmt.Sprintf("GeneralName [%d]", n.Tag))
	}
	return nil
}

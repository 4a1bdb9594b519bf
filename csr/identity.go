package csr

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Identity is a Kubernetes workload identity: a service account in a namespace, in a trust domain.
type Identity struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
}

// String returns the SPIFFE ID, spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
func (id Identity) String() string {
	return "spiffe://" + id.TrustDomain + "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount
}

// URI returns the SPIFFE ID as a URL, ready for a certificate's URI SAN.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain, Path: "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount}
}

// Validate reports whether every part of id is well formed: a SPIFFE trust domain name, a DNS-1123 label
// namespace and a DNS-1123 subdomain service-account name, as Kubernetes requires.
func (id Identity) Validate() error {
	if err := ValidateTrustDomain(id.TrustDomain); err != nil {
		return err
	}
	if !isDNSLabel(id.Namespace) {
		return fmt.Errorf("%w: namespace %q is not a DNS-1123 label", ErrInvalidID, id.Namespace)
	}
	if !isDNSSubdomain(id.ServiceAccount) {
		return fmt.Errorf("%w: service account %q is not a DNS-1123 subdomain", ErrInvalidID, id.ServiceAccount)
	}
	return nil
}

// ParseID parses a SPIFFE ID of the exact shape spiffe://<trust-domain>/ns/<ns>/sa/<sa>. go-spiffe's
// spiffeid parser checks the SPIFFE-ID syntax (scheme, trust-domain and path characters, no empty or dot
// segments), which refuses a query, a fragment, user info, a port and percent-encoding; on top of it meshca
// requires exactly the four Istio path segments, at most 2048 bytes, a trust domain of at most 255 bytes and
// Kubernetes names (ValidateTrustDomain, Identity.Validate). Anything else, such as extra path segments
// (ns/a/b/sa/c), is refused.
func ParseID(s string) (Identity, error) {
	if len(s) > 2048 {
		return Identity{}, fmt.Errorf("%w: longer than 2048 bytes", ErrInvalidID)
	}
	sid, err := spiffeid.FromString(s)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %q: %v", ErrInvalidID, s, err)
	}
	parts := strings.Split(strings.TrimPrefix(sid.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" {
		return Identity{}, fmt.Errorf("%w: %q is not of the form "+
			"spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", ErrInvalidID, s)
	}
	id := Identity{TrustDomain: sid.TrustDomain().Name(), Namespace: parts[1], ServiceAccount: parts[3]}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// ParseURI is ParseID for a URL taken from a certificate or CSR.
func ParseURI(u *url.URL) (Identity, error) {
	if u == nil {
		return Identity{}, fmt.Errorf("%w: empty URI", ErrInvalidID)
	}
	if u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.RawPath != "" {
		return Identity{}, fmt.Errorf("%w: %q has parts a SPIFFE ID may not have", ErrInvalidID, u.String())
	}
	return ParseID(u.String())
}

// ValidateTrustDomain reports whether td is a valid SPIFFE trust domain name (SPIFFE-ID §2.1, checked by
// go-spiffe's spiffeid): lowercase letters, digits, dots, dashes and underscores, and at most 255 bytes.
func ValidateTrustDomain(td string) error {
	if td == "" || len(td) > 255 {
		return fmt.Errorf("%w: trust domain %q must be 1 to 255 characters", ErrInvalidID, td)
	}
	// TrustDomainFromString also takes a whole SPIFFE ID; a name must come back unchanged.
	if name, err := spiffeid.TrustDomainFromString(td); err != nil || name.Name() != td {
		return fmt.Errorf("%w: trust domain %q may hold only lowercase letters, digits, '.', '-' and '_'",
			ErrInvalidID, td)
	}
	return nil
}

func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

func isDNSSubdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !isDNSLabel(label) {
			return false
		}
	}
	return true
}

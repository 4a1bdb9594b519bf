package ca

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr"
)

// Policy decides what may be issued to an authenticated caller.
type Policy struct {
	// TrustDomain is the mesh's trust domain, e.g. cluster.local. Certificates always carry it.
	TrustDomain string `json:"trustDomain"`
	// TrustDomainAliases are other trust domains a CSR may name for the same workload (for example during a
	// trust-domain migration); the certificate still carries TrustDomain.
	TrustDomainAliases []string `json:"trustDomainAliases,omitempty"`
	// DefaultTTL applies when the request asks for none (validity_duration 0). Default 24h.
	DefaultTTL time.Duration `json:"defaultTTL,omitempty"`
	// MinTTL and MaxTTL bound requested lifetimes; requests outside are clamped. Defaults 1h and 24h.
	MinTTL time.Duration `json:"minTTL,omitempty"`
	MaxTTL time.Duration `json:"maxTTL,omitempty"`
	// DNSNameTemplates are DNS SANs a CSR may ask for, with {ns} and {sa} standing for the caller's namespace
	// and service account, e.g. "{sa}.{ns}.svc". Default none: workload CSRs carry only the SPIFFE ID.
	DNSNameTemplates []string `json:"dnsNameTemplates,omitempty"`
	// CommonName, when true, puts the SPIFFE ID in the subject CN (if it fits RFC 5280's 64 characters).
	// Default false: the identity lives in the URI SAN only, as the X.509-SVID profile recommends.
	CommonName bool `json:"commonName,omitempty"`
	// MLDSA, when true, accepts CSRs whose key is ML-DSA-44/65/87 (RFC 9881); a backend's ML-DSA CA signs
	// them (file: mldsaDir). Default false.
	MLDSA bool `json:"mldsa,omitempty"`
}

// Validate reports every problem with p at once, after defaults are applied.
func (p *Policy) Validate() error {
	var errs []error
	if err := csr.ValidateTrustDomain(p.TrustDomain); err != nil {
		errs = append(errs, fmt.Errorf("policy: trustDomain: %w", err))
	}
	for _, a := range p.TrustDomainAliases {
		if err := csr.ValidateTrustDomain(a); err != nil {
			errs = append(errs, fmt.Errorf("policy: trustDomainAliases: %w", err))
		}
	}
	d := p.withDefaults()
	if d.MinTTL <= 0 || d.MaxTTL < d.MinTTL {
		errs = append(errs, fmt.Errorf("policy: need 0 < minTTL (%s) <= maxTTL (%s)", d.MinTTL, d.MaxTTL))
	}
	if d.DefaultTTL < d.MinTTL || d.DefaultTTL > d.MaxTTL {
		errs = append(
			errs,
			fmt.Errorf(
				"policy: defaultTTL %s must lie within [minTTL %s, maxTTL %s]",
				d.DefaultTTL,
				d.MinTTL,
				d.MaxTTL,
			),
		)
	}
	for _, t := range p.DNSNameTemplates {
		if strings.ContainsAny(strings.NewReplacer("{ns}", "", "{sa}", "").Replace(t), "{}*") {
			errs = append(errs, fmt.Errorf("policy: DNS name template %q may use only {ns} and {sa}, no wildcards", t))
		}
	}
	return errors.Join(errs...)
}

// EffectiveMaxTTL is MaxTTL after defaults: the longest lifetime this policy issues.
func (p Policy) EffectiveMaxTTL() time.Duration { return p.withDefaults().MaxTTL }

func (p Policy) withDefaults() Policy {
	if p.DefaultTTL == 0 {
		p.DefaultTTL = 24 * time.Hour
	}
	if p.MinTTL == 0 {
		p.MinTTL = time.Hour
		if p.DefaultTTL < p.MinTTL {
			p.MinTTL = p.DefaultTTL
		}
	}
	if p.MaxTTL == 0 {
		p.MaxTTL = 24 * time.Hour
		if p.DefaultTTL > p.MaxTTL {
			p.MaxTTL = p.DefaultTTL
		}
	}
	return p
}

// Grant is what policy allows for one request.
type Grant struct {
	Identity csr.Identity
	DNSNames []string
	TTL      time.Duration
	// Adjusted says how the requested lifetime was changed: "", "clamped_to_max" or "raised_to_min".
	Adjusted string
}

// Authorize decides what to issue to caller (or to target, when a node agent impersonates a workload and
// that was already allowed) for the CSR req with requested lifetime ttl (0 = default).
//
// Lifetimes outside [MinTTL, MaxTTL] are clamped, not refused: istio-agent schedules rotation from the
// certificate it gets, so a clamped certificate works, while a refusal would leave a workload with a
// mis-set SECRET_TTL without any certificate. Every clamp is counted and logged.
func (p *Policy) Authorize(target csr.Identity, req *csr.Request, ttl time.Duration) (*Grant, error) {
	pol := p.withDefaults()
	if req.IsCA {
		return nil, fmt.Errorf("%w: %w; meshca issues workload certificates only", ErrPermissionDenied, ErrCARequested)
	}
	c := req.CSR
	if len(c.URIs) > 1 {
		return nil, fmt.Errorf(
			"%w: %w: CSR asks for %d URI SANs; ask for exactly your own SPIFFE ID",
			ErrPermissionDenied,
			ErrForbiddenSAN,
			len(c.URIs),
		)
	}
	if len(c.URIs) == 1 {
		if err := pol.matches(c.URIs[0], target); err != nil {
			return nil, err
		}
	}
	if len(c.EmailAddresses) > 0 || len(c.IPAddresses) > 0 {
		return nil, fmt.Errorf(
			"%w: %w: email and IP SANs are not issued to workloads",
			ErrPermissionDenied,
			ErrForbiddenSAN,
		)
	}
	allowed := pol.dnsNames(target)
	for _, d := range c.DNSNames {
		if !slices.Contains(allowed, strings.ToLower(d)) {
			return nil, fmt.Errorf(
				"%w: %w: DNS SAN %q is not allowed for %s",
				ErrPermissionDenied,
				ErrForbiddenSAN,
				d,
				target,
			)
		}
	}
	g := &Grant{Identity: target, TTL: ttl}
	for _, d := range c.DNSNames {
		g.DNSNames = append(g.DNSNames, strings.ToLower(d))
	}
	switch {
	case ttl < 0:
		return nil, fmt.Errorf("%w: validity_duration %s is negative; send 0 for the default", ErrInvalidRequest, ttl)
	case ttl == 0:
		g.TTL = pol.DefaultTTL
	case ttl > pol.MaxTTL:
		g.TTL, g.Adjusted = pol.MaxTTL, "clamped_to_max"
	case ttl < pol.MinTTL:
		g.TTL, g.Adjusted = pol.MinTTL, "raised_to_min"
	}
	return g, nil
}

// matches checks that the CSR's URI SAN names target, in the trust domain or one of its aliases.
func (p Policy) matches(u *url.URL, target csr.Identity) error {
	id, err := csr.ParseURI(u)
	if err != nil {
		return fmt.Errorf("%w: %w: CSR URI SAN: %v", ErrPermissionDenied, ErrIdentityMismatch, err)
	}
	if id.TrustDomain != p.TrustDomain && !slices.Contains(p.TrustDomainAliases, id.TrustDomain) {
		return fmt.Errorf(
			"%w: %w: CSR asks for trust domain %q; this CA serves %q",
			ErrPermissionDenied,
			ErrIdentityMismatch,
			id.TrustDomain,
			p.TrustDomain,
		)
	}
	if id.Namespace != target.Namespace || id.ServiceAccount != target.ServiceAccount {
		return fmt.Errorf(
			"%w: %w: CSR asks for %s but the caller is %s",
			ErrPermissionDenied,
			ErrIdentityMismatch,
			id,
			target,
		)
	}
	return nil
}

func (p Policy) dnsNames(id csr.Identity) []string {
	out := make([]string, 0, len(p.DNSNameTemplates))
	for _, t := range p.DNSNameTemplates {
		out = append(out, strings.NewReplacer("{ns}", id.Namespace, "{sa}", id.ServiceAccount).Replace(t))
	}
	return out
}

// identityOf is the identity a caller proved, in the mesh's trust domain.
func (p Policy) identityOf(c *authn.Caller) (csr.Identity, error) {
	id := csr.Identity{TrustDomain: p.TrustDomain, Namespace: c.Namespace, ServiceAccount: c.ServiceAccount}
	if err := id.Validate(); err != nil {
		return csr.Identity{}, fmt.Errorf("%w: caller identity: %v", authn.ErrUnauthenticated, err)
	}
	return id, nil
}

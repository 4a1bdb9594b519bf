package ca

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/policy"
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
	// ExperimentalComposite, when true, accepts CSRs whose key is composite id-MLDSA65-ECDSA-P256-SHA512
	// (draft-ietf-lamps-pq-composite-sigs, whose encodings may still change); a backend's composite CA signs
	// them (file: compositeDir). Default false.
	ExperimentalComposite bool `json:"experimentalComposite,omitempty"`
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
	errs = append(errs, p.lifetimeProblems()...)
	for _, t := range p.DNSNameTemplates {
		if strings.ContainsAny(strings.NewReplacer("{ns}", "", "{sa}", "").Replace(t), "{}*") {
			errs = append(errs, fmt.Errorf("policy: DNS name template %q may use only {ns} and {sa}, no wildcards", t))
		}
		if !strings.Contains(t, "{ns}") {
			errs = append(errs, fmt.Errorf("policy: dnsNameTemplates: %q lacks {ns}: without it one namespace "+
				"could claim a name another owns; write e.g. {sa}.{ns}.svc", t))
		}
	}
	return errors.Join(errs...)
}

// Grant is what policy allows for one request.
type Grant struct {
	Identity csr.Identity
	DNSNames []string
	TTL      time.Duration
	// Adjusted says how the requested lifetime was changed: "", "clamped_to_max" or "raised_to_min".
	Adjusted string
	// Rule names the policy rule that decided (policy.DefaultRule when none did).
	Rule string
	// Backends are the backends that sign, in failover order; nil means every configured one.
	Backends []string
	// Rate is the deciding rule's per-identity rate; nil when it sets none.
	Rate *policy.Rate
}

// Authorize decides what to issue to target for the CSR req with requested lifetime ttl (0 = default), by
// the global issuance settings alone (no per-namespace rules).
func (p *Policy) Authorize(target csr.Identity, req *csr.Request, ttl time.Duration) (*Grant, error) {
	e, err := policy.New(p.withDefaults().defaults(), policy.Config{}, nil)
	if err != nil {
		return nil, err
	}
	g, _, err := p.withDefaults().decide(e, Ask{Identity: target, CSR: req, TTL: ttl})
	return g, err
}

// Ask is one question to policy: what may this identity, already proven, be issued for this CSR?
type Ask struct {
	// Identity is the identity to be issued (the caller's, or the workload a node agent acts for).
	Identity csr.Identity
	// CSR is the parsed request; nil when explaining without one (then KeyType, when set, is checked).
	CSR     *csr.Request
	KeyType string
	// TTL is the requested lifetime; 0 asks for the default.
	TTL time.Duration
	// CertSigner is the request's CertSigner metadata.
	CertSigner string
	// NamespaceLabels are the labels of the identity's Namespace; nil outside a cluster.
	NamespaceLabels map[string]string
	// Now is the time of the request.
	Now time.Time
}

// decide is the one decision both Issue and Explain run: the CSR may ask only for the identity (checked
// here), then the first matching rule decides lifetime, names, key type, signer, deny and backends. The
// Decision is returned even when the request is refused, with the reason in its trace. p has its defaults.
//
// Lifetimes outside the rule's [min, max] are clamped, not refused: istio-agent schedules rotation from the
// certificate it gets, so a clamped certificate works, while a refusal would leave a workload with a
// mis-set SECRET_TTL without any certificate. Every clamp is counted and logged.
func (p Policy) decide(e *policy.Engine, a Ask) (*Grant, *policy.Decision, error) {
	target := a.Identity
	preq := policy.Request{Namespace: target.Namespace, ServiceAccount: target.ServiceAccount,
		CertSigner: a.CertSigner, NamespaceLabels: a.NamespaceLabels, KeyType: a.KeyType, URI: target.URI(),
		TTL: a.TTL, Now: a.Now}
	if a.CSR != nil {
		if err := p.checkCSR(target, a.CSR); err != nil {
			d := &policy.Decision{Err: err, Trace: []policy.Step{{Check: "csr", Result: "deny", Why: err.Error()}}}
			return nil, d, err
		}
		preq.KeyType, preq.DNSNames = a.CSR.KeyType, a.CSR.CSR.DNSNames
	}
	if a.TTL < 0 {
		err := fmt.Errorf("%w: validity_duration %s is negative; send 0 for the default", ErrInvalidRequest, a.TTL)
		return nil, &policy.Decision{Err: err, Trace: []policy.Step{{Check: "lifetime", Result: "deny",
			Why: err.Error()}}}, err
	}
	d := e.Decide(preq)
	if !d.Allowed {
		err := d.Err
		if errors.Is(err, policy.ErrNameNotAllowed) {
			err = fmt.Errorf("%w: %w: %w", ErrPermissionDenied, ErrForbiddenSAN, err)
		}
		return nil, d, err
	}
	return &Grant{Identity: target, DNSNames: d.DNSNames, TTL: d.TTL, Adjusted: d.Adjusted, Rule: d.Rule,
		Backends: d.Backends, Rate: d.Rate}, d, nil
}

// checkCSR refuses a CSR that asks for a CA, for another identity, or for SANs no workload gets.
func (p Policy) checkCSR(target csr.Identity, req *csr.Request) error {
	if req.IsCA {
		return fmt.Errorf("%w: %w; meshca issues workload certificates only", ErrPermissionDenied, ErrCARequested)
	}
	c := req.CSR
	if len(c.URIs) > 1 {
		return fmt.Errorf("%w: %w: CSR asks for %d URI SANs; ask for exactly your own SPIFFE ID",
			ErrPermissionDenied, ErrForbiddenSAN, len(c.URIs))
	}
	if len(c.URIs) == 1 {
		if err := p.matches(c.URIs[0], target); err != nil {
			return err
		}
	}
	if len(c.EmailAddresses) > 0 || len(c.IPAddresses) > 0 {
		return fmt.Errorf("%w: %w: email and IP SANs are not issued to workloads", ErrPermissionDenied,
			ErrForbiddenSAN)
	}
	return nil
}

// defaults are the global issuance settings as the policy engine's default rule; p has its defaults.
func (p Policy) defaults() policy.Defaults {
	return policy.Defaults{DefaultTTL: p.DefaultTTL, MinTTL: p.MinTTL, MaxTTL: p.MaxTTL,
		DNSNameTemplates: p.DNSNameTemplates}
}

// matches checks that the CSR's URI SAN names target, in the trust domain or one of its aliases.
func (p Policy) matches(u *url.URL, target csr.Identity) error {
	id, err := csr.ParseURI(u)
	if err != nil {
		return fmt.Errorf("%w: %w: CSR URI SAN: %v", ErrPermissionDenied, ErrIdentityMismatch, err)
	}
	canon, ok := p.Mesh().Canonical(id)
	if !ok {
		return fmt.Errorf(
			"%w: %w: CSR asks for trust domain %q; this CA serves %q",
			ErrPermissionDenied,
			ErrIdentityMismatch,
			id.TrustDomain,
			p.TrustDomain,
		)
	}
	if canon != target {
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

// Mesh is the trust domain and its aliases: where every identity this policy issues lives.
func (p Policy) Mesh() csr.Mesh {
	return csr.Mesh{TrustDomain: p.TrustDomain, Aliases: p.TrustDomainAliases}
}

// IdentityOf is the identity a caller proved, in the mesh's trust domain: the one place a workload identity
// is built from a caller (serve, and policy explain from its flags).
func (p Policy) IdentityOf(c *authn.Caller) (csr.Identity, error) {
	id, err := p.Mesh().Identity(c.Namespace, c.ServiceAccount)
	if err != nil {
		return csr.Identity{}, fmt.Errorf("%w: caller identity: %v", authn.ErrUnauthenticated, err)
	}
	return id, nil
}

package ca

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr"
)

// DelegatedRequest is a certificate request that a registration authority passes on for a workload it has
// authenticated itself: istiod in its RA mode, through a Kubernetes CertificateSigningRequest. The authority
// vouches for the identity; the CSR names it (one SPIFFE URI SAN), and everything else about the CSR is
// checked exactly as for a workload's own request.
type DelegatedRequest struct {
	// Authority is the registration authority as proven by the transport (the API server's record of who
	// created the CertificateSigningRequest). Its Method names that transport, e.g. "k8s-csr".
	Authority *authn.Caller
	// Refusal is a problem the transport already found (an authority that is not allowed, a usage meshca does
	// not issue). The request is refused with it, counted and audited like every other refusal.
	Refusal error
	// CSR is the PEM certificate request.
	CSR []byte
	// TTL is the requested lifetime; 0 asks for the default.
	TTL time.Duration
	// Backends, when not empty, are the names of the only backends that may sign this request, in the order
	// they are configured; failover stays within them.
	Backends []string
	// Peer names where the request came from, for the audit record (e.g. the CertificateSigningRequest).
	Peer string
}

// IssueDelegated issues the identity a registration authority asks for. The identity is the CSR's one SPIFFE
// URI SAN, which must be in the mesh's trust domain or one of its aliases; the CSR, the key, the requested
// SANs, extensions and lifetime go through the same checks and policy as Issue, the same backends with
// failover, the same leaf check, metrics and audit record (caller: the authority; identity: the SPIFFE ID).
// Errors wrap the same sentinels as Issue's; Classify them.
func (i *Issuer) IssueDelegated(ctx context.Context, req *DelegatedRequest) (*Result, error) {
	start := time.Now()
	rec := auditRecord{peer: req.Peer, caller: req.Authority}
	res, err := i.issueDelegated(ctx, req, &rec)
	i.account(ctx, &rec, start, err)
	return res, err
}

func (i *Issuer) issueDelegated(ctx context.Context, req *DelegatedRequest, rec *auditRecord) (*Result, error) {
	if req.Refusal != nil {
		return nil, req.Refusal
	}
	if req.Authority == nil {
		return nil, fmt.Errorf("%w: a delegated request names no registration authority", authn.ErrUnauthenticated)
	}
	if err := i.limits.acquire(); err != nil {
		return nil, err
	}
	defer i.limits.release()
	parsed, err := csr.Parse(req.CSR)
	if err != nil {
		return nil, err
	}
	if len(parsed.CSR.URIs) == 0 {
		return nil, fmt.Errorf("%w: %w: the CSR names no SPIFFE ID; a registration authority must ask for the "+
			"workload's spiffe://<trust domain>/ns/<ns>/sa/<sa> as the one URI SAN",
			ErrPermissionDenied, ErrIdentityMismatch)
	}
	asked, err := csr.ParseURI(parsed.CSR.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %w: CSR URI SAN: %w", ErrPermissionDenied, ErrIdentityMismatch, err)
	}
	rec.identity = asked.String()
	// The target is the asked identity in the mesh's own trust domain. Authorize compares the CSR with it and
	// refuses a trust domain that is neither the mesh's nor an alias, and any second URI.
	target := csr.Identity{TrustDomain: i.policy.TrustDomain, Namespace: asked.Namespace,
		ServiceAccount: asked.ServiceAccount}
	if err := i.limits.allow("for:" + target.String()); err != nil {
		return nil, err
	}
	return i.issueTo(ctx, target, parsed, req.TTL, "", req.Backends, rec)
}

// choose returns the configured backends named in only, in configuration order; all of them when only is
// empty.
func (i *Issuer) choose(only []string) ([]NamedBackend, error) {
	if len(only) == 0 {
		return i.backends, nil
	}
	var out []NamedBackend
	for _, b := range i.backends {
		if slices.Contains(only, b.Name) {
			out = append(out, b)
		}
	}
	if len(out) != len(only) {
		return nil, fmt.Errorf("ca: backends %q requested but configured are %q", only, i.BackendNames())
	}
	return out, nil
}

// BackendNames returns the names of the configured backends in order.
func (i *Issuer) BackendNames() []string {
	out := make([]string, 0, len(i.backends))
	for _, b := range i.backends {
		out = append(out, b.Name)
	}
	return out
}

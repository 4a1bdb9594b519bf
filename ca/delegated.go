package ca

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
	// Backends, when not empty, are the names of the only backends that may sign this request (the signer's
	// routing). They narrow the backends the deciding policy rule allows, whose failover order is kept; when
	// the two have none in common the request is refused with ErrBackendNotAllowed.
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

// within returns the backends that sign a request the rule of grant decided: the rule's backends (every
// configured one when it names none) in its failover order, narrowed to those named in only when only is not
// empty. only is a registration authority's signer routing (k8sSigner.signers[].backends): it may narrow what
// policy allows, never widen it, so a routing that leaves no backend is refused with ErrBackendNotAllowed.
// A name in only that is not configured is a wiring error (configuration validation prevents it).
func (i *Issuer) within(grant *Grant, only []string) ([]NamedBackend, error) {
	allowed := i.route(grant.Backends)
	if len(only) == 0 {
		return allowed, nil
	}
	configured := i.BackendNames()
	for _, n := range only {
		if !slices.Contains(configured, n) {
			return nil, fmt.Errorf("ca: signer routing names backend %q but the configured ones are %q", n,
				configured)
		}
	}
	out := slices.DeleteFunc(slices.Clone(allowed), func(b NamedBackend) bool {
		return !slices.Contains(only, b.Name)
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %w: policy rule %s allows backends %s, the signer's routing only %s; "+
			"make policy.rules[].backends and k8sSigner.signers[].backends share a backend", ErrPermissionDenied,
			ErrBackendNotAllowed, grant.Rule, strings.Join(backendNames(allowed), ", "), strings.Join(only, ", "))
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

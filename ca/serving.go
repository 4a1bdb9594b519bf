package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/csr"
)

// ServingRequest asks for meshca's own TLS serving certificate. It is the only way to obtain a certificate
// without a caller's credential, so it takes no identity from outside: the certificate names meshca's own
// SPIFFE ID in the mesh's trust domain, and the request is audited like any other.
type ServingRequest struct {
	// Namespace and ServiceAccount are meshca's own, as configured (server.namespace, server.serviceAccount).
	Namespace, ServiceAccount string
	// CSR is signed with the new key; remote backends (Vault, step-ca) sign CSRs only.
	CSR *x509.CertificateRequest
	// DNSNames and IPAddresses are the names agents use in CA_ADDR.
	DNSNames    []string
	IPAddresses []net.IP
	TTL         time.Duration
}

// IssueServing issues meshca's own serving certificate through the backends, with failover and the same
// verification of the answer as workload certificates. It is not reachable from the gRPC facade, which sees
// only Issue. The request is audited (method "self") but not counted as a workload issuance.
func (i *Issuer) IssueServing(ctx context.Context, req *ServingRequest) (*Result, error) {
	start := time.Now()
	id := csr.Identity{TrustDomain: i.policy.TrustDomain, Namespace: req.Namespace, ServiceAccount: req.ServiceAccount}
	res, err := i.issueServing(ctx, id, req)
	attrs := []slog.Attr{slog.String("outcome", Classify(err).Outcome), slog.String("authn", "self"),
		slog.String("identity", id.String()), slog.Duration("duration", time.Since(start))}
	if err != nil {
		attrs = append(attrs, slog.String("reason", Reason(err)), slog.String("error", err.Error()))
		i.audit.LogAttrs(ctx, slog.LevelWarn, "serving certificate not issued", attrs...)
		return nil, err
	}
	leaf := res.Chain[0]
	attrs = append(
		attrs,
		slog.String("backend", res.Backend),
		slog.String("serial", fmt.Sprintf("%x", leaf.SerialNumber)),
		slog.Time("not_after", leaf.NotAfter.UTC()),
	)
	i.audit.LogAttrs(ctx, slog.LevelInfo, "serving certificate issued", attrs...)
	return res, nil
}

func (i *Issuer) issueServing(ctx context.Context, id csr.Identity, req *ServingRequest) (*Result, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("%w: meshca's own identity (server.namespace, server.serviceAccount): %v",
			ErrInvalidRequest, err)
	}
	if req.CSR == nil || req.TTL <= 0 {
		return nil, errors.New("ca: a serving certificate request needs a CSR and a positive lifetime")
	}
	if err := req.CSR.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: serving certificate CSR: %v", csr.ErrInvalidCSR, err)
	}
	sreq := &backends.SignRequest{CSR: req.CSR, PublicKey: req.CSR.PublicKey, URIs: []*url.URL{id.URI()},
		DNSNames: req.DNSNames, IPAddresses: req.IPAddresses, TTL: req.TTL}
	resp, name, err := i.sign(ctx, i.backends, sreq)
	if err != nil {
		return nil, err
	}
	return &Result{Chain: resp.Chain, Identity: id, Backend: name}, nil
}

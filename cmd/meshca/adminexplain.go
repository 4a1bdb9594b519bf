package main

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/crl/admin"
	"github.com/meshca/meshca/csr"
)

// errNoIssuer is the explain call of an admin API that serves no issuer (meshca revoke --offline).
var errNoIssuer = errors.New("policy explain needs a serving meshca: this admin API has no issuer")

// explainWith lets the admin API explain with issuer's live rules; a no-op when revocation is off.
func (r *revocation) explainWith(issuer *ca.Issuer) {
	if r != nil {
		r.issuer = issuer
	}
}

// Explain implements admin.Service: it answers req by the issuer's Explain, under the rules in force (the
// last reload of policyFile). req's bounds are checked by the handler; its values are checked here as
// policy explain checks its flags.
func (r *revocation) Explain(_ context.Context, req admin.ExplainRequest) (*admin.ExplainResponse, error) {
	if r.issuer == nil {
		return nil, errNoIssuer
	}
	ask, err := askOf(r.issuer, req)
	if err != nil {
		return nil, err
	}
	return explained(ask, r.issuer.Explain(ask)), nil
}

// askOf builds the question of req; the identity is built as serve builds it from a caller.
func askOf(issuer *ca.Issuer, req admin.ExplainRequest) (ca.Ask, error) {
	var errs []error
	id, err := issuer.Mesh().Identity(req.Namespace, req.ServiceAccount)
	if err != nil {
		errs = append(errs, fmt.Errorf("namespace/serviceAccount: %w", err))
	}
	ask := ca.Ask{Identity: id, KeyType: req.KeyType, CertSigner: req.CertSigner,
		NamespaceLabels: req.NamespaceLabels}
	if req.KeyType != "" && !slices.Contains(csr.KeyTypes(), req.KeyType) {
		errs = append(errs, fmt.Errorf("keyType %q: use one of %s", bounded(req.KeyType),
			strings.Join(csr.KeyTypes(), ", ")))
	}
	if req.TTL != "" {
		if ask.TTL, err = time.ParseDuration(req.TTL); err != nil {
			errs = append(errs, fmt.Errorf("ttl %q: not a Go duration (1h30m)", bounded(req.TTL)))
		}
	}
	if req.At != "" {
		if ask.Now, err = time.Parse(time.RFC3339, req.At); err != nil {
			errs = append(errs, fmt.Errorf("at %q: not RFC 3339 (2026-12-01T00:00:00Z)", bounded(req.At)))
		}
	}
	if req.CSR != "" {
		if ask.CSR, err = csr.Parse([]byte(req.CSR)); err != nil {
			errs = append(errs, fmt.Errorf("csr: %w (serve would refuse it: %s)", err, ca.Classify(err).Code))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ca.Ask{}, fmt.Errorf("%w: %w", admin.ErrInvalidRequest, err)
	}
	return ask, nil
}

// explained is the answer to ask: what policy explain prints, locally or through the admin API.
func explained(ask ca.Ask, d *policy.Decision) *admin.ExplainResponse {
	class := ca.Classify(d.Err)
	res := &admin.ExplainResponse{Identity: ask.Identity.String(), Request: askDetails(ask), Decision: *d,
		Code: class.Code.String(), Reason: class.Reason}
	if !d.Allowed && d.Err != nil {
		res.Error = d.Err.Error()
	}
	return res
}

// explainRemote asks the meshca at o.adminAddr, after checking the flags as the local explain checks them.
func explainRemote(ctx context.Context, o explainOptions) (*admin.ExplainResponse, error) {
	ask, err := explainAsk(o, nil)
	if err != nil {
		return nil, err
	}
	req := admin.ExplainRequest{Namespace: o.ns, ServiceAccount: o.sa, KeyType: o.keyType, CertSigner: o.signer,
		NamespaceLabels: ask.NamespaceLabels, At: o.at}
	if o.ttl != 0 {
		req.TTL = o.ttl.String()
	}
	if ask.CSR != nil {
		req.CSR = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: ask.CSR.CSR.Raw}))
	}
	tok, err := o.tok.token()
	if err != nil {
		return nil, err
	}
	res, err := (&admin.Client{Addr: o.adminAddr, Token: tok}).Explain(ctx, req)
	if errors.Is(err, admin.ErrRefused) {
		return nil, usageError{err}
	}
	return res, err
}

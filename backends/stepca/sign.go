package stepca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/csr"
)

// Sign issues a certificate through step-ca's /1.0/sign. The token names exactly req's SANs and carries
// the CSR's fingerprint, so step-ca can certify nothing else; the template on step-ca's side must copy the
// token's SANs and leave the subject empty (docs/stepca.md), and what step-ca returns must be exactly the
// requested workload certificate (backends.CheckLeaf). With an X5C provisioner, step-ca refuses certificates
// that outlive meshca's credential (or start before it), so the TTL is capped at the credential's NotAfter
// (the leaf shows the shortening, and a warning is logged) and a credential with less than a minute left makes
// the backend unavailable.
func (b *Backend) Sign(ctx context.Context, req *backends.SignRequest) (*backends.SignResponse, error) {
	sans, err := checkRequest(req)
	if err != nil {
		return nil, err
	}
	if _, err := b.trust(ctx); err != nil { // TLS to step-ca needs its roots
		return nil, err
	}
	body, err := b.signBody(req, sans)
	if err != nil {
		return nil, err
	}
	return b.sendSign(ctx, req, body)
}

// checkRequest checks, before anything reaches step-ca, that req is one step-ca can sign as asked, and
// returns the SANs for the token: URI SANs (each a Kubernetes-shaped SPIFFE ID), then DNS names, then IP
// addresses. A request it cannot sign is refused with backends.ErrRefused.
func checkRequest(req *backends.SignRequest) ([]string, error) {
	refuse := func(format string, args ...any) ([]string, error) {
		return nil, fmt.Errorf("stepca: %w: "+format, append([]any{backends.ErrRefused}, args...)...)
	}
	if req == nil || req.CSR == nil {
		return refuse("the sign request carries no CSR; step-ca signs only CSRs")
	}
	if !backends.SameKey(req.CSR.PublicKey, req.PublicKey) {
		return refuse("the request's public key is not the CSR's; step-ca certifies the CSR's key only")
	}
	if req.TTL <= 0 {
		return refuse("TTL %s must be positive", req.TTL)
	}
	if len(req.Subject.ToRDNSequence()) > 0 {
		return refuse("the request asks for a subject, and step-ca's provisioner template decides the subject: " +
			"turn off policy.commonName for this backend")
	}
	var sans []string
	for _, u := range req.URIs {
		if _, err := csr.ParseURI(u); err != nil {
			return nil, fmt.Errorf("stepca: %w: URI SAN: %w", backends.ErrRefused, err)
		}
		sans = append(sans, u.String())
	}
	sans = append(sans, req.DNSNames...)
	for _, ip := range req.IPAddresses {
		sans = append(sans, ip.String())
	}
	if len(sans) == 0 {
		return refuse("the request has no SANs; step-ca needs at least one")
	}
	// step-ca certifies a CSR only if its SANs are exactly the token's. The core has already checked the
	// CSR against the identity; a difference here is a bug upstream, not something to paper over.
	if !sameSANs(req.CSR.URIs, req.CSR.DNSNames, req.CSR.IPAddresses, req) || len(req.CSR.EmailAddresses) > 0 {
		return refuse("the CSR's SANs differ from the request's; step-ca certifies a CSR only when its SANs are " +
			"exactly the certificate's")
	}
	return sans, nil
}

// signBody mints a one-time token for req and builds the /1.0/sign request: the validity period is exactly
// the TTL, backdated by Config.Backdate, within the X5C credential's own validity.
func (b *Backend) signBody(req *backends.SignRequest, sans []string) (*signRequest, error) {
	now := b.cfg.Clock().UTC().Truncate(time.Second)
	notBefore, notAfter, err := b.validity(now, req.TTL)
	if err != nil {
		return nil, err
	}
	tok, err := b.minter.mint(now, b.minter.audience(b.base, "sign"), sans[0], sans, csrFingerprint(req.CSR.Raw))
	if err != nil {
		return nil, err
	}
	return &signRequest{
		CSR:       string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})),
		OTT:       tok,
		NotBefore: notBefore.Format(time.RFC3339),
		NotAfter:  notAfter.Format(time.RFC3339),
	}, nil
}

// validity returns the validity period to ask for at now: backdated, but never starting before the X5C
// credential (a freshly rotated one) and never ending after it (logged once a minute).
func (b *Backend) validity(now time.Time, ttl time.Duration) (notBefore, notAfter time.Time, err error) {
	notBefore = now.Add(-b.cfg.Backdate)
	credFrom, credUntil, err := b.minter.window()
	if err != nil {
		return notBefore, notAfter, fmt.Errorf("stepca: x5c credential: %w: %w", backends.ErrUnavailable, err)
	}
	if notBefore.Before(credFrom) {
		notBefore = credFrom.UTC()
	}
	notAfter = notBefore.Add(ttl)
	if credUntil.IsZero() || !notAfter.After(credUntil) {
		return notBefore, notAfter, nil
	}
	if credUntil.Sub(now) < time.Minute {
		return notBefore, notAfter, fmt.Errorf("stepca: the x5c credential %s expires at %s, too soon to sign with; "+
			"renew it: %w", b.cfg.X5C.CertFile, credUntil.UTC().Format(time.RFC3339), backends.ErrUnavailable)
	}
	if last := b.lastCapWarning.Load(); now.Unix()-last >= 60 && b.lastCapWarning.CompareAndSwap(last, now.Unix()) {
		b.cfg.Logger.Warn("stepca: TTL capped at the x5c credential's expiry; renew the credential "+
			"(logged once a minute)",
			"requested", ttl, "notAfter", credUntil.UTC().Format(time.RFC3339))
	}
	return notBefore, credUntil.UTC(), nil
}

// sendSign posts body to /1.0/sign and verifies what step-ca returns.
func (b *Backend) sendSign(ctx context.Context, req *backends.SignRequest, body *signRequest) (*backends.SignResponse,
	error) {
	var resp signResponse
	if err := b.call(ctx, "sign", http.MethodPost, "/1.0/sign", body, &resp, maxResponse); err != nil {
		return nil, err
	}
	certs := resp.CertChain
	if len(certs) == 0 { // step-ca before certChain existed
		certs = []string{resp.Crt, resp.CA}
	}
	chain, roots, err := b.verifyIssued(ctx, certs, req)
	if err != nil {
		return nil, err
	}
	b.cfg.Logger.Debug("stepca: certificate issued", "serial", chain[0].SerialNumber.String(),
		"notAfter", chain[0].NotAfter.UTC().Format(time.RFC3339))
	return &backends.SignResponse{Chain: chain, Roots: roots}, nil
}

// verifyIssued parses step-ca's PEM certificates (leaf, intermediates), verifies them against the cached
// roots, and checks with backends.CheckLeaf that the leaf is exactly what req asked for. It returns the chain
// leaf → intermediates → root, and the roots it was verified against.
func (b *Backend) verifyIssued(ctx context.Context, pems []string, req *backends.SignRequest) (
	chain, roots []*x509.Certificate, err error) {
	var certs []*x509.Certificate
	for _, p := range pems {
		cs, err := backends.ParseCertificates([]byte(p))
		if err != nil {
			return nil, nil, fmt.Errorf("stepca: sign response: %w: %v", backends.ErrBadChain, err)
		}
		certs = append(certs, cs...)
	}
	st, err := b.trust(ctx)
	if err != nil {
		return nil, nil, err
	}
	chain, err = verifyChain(st.pool, certs[0], certs[1:])
	if err != nil {
		return nil, nil, fmt.Errorf("stepca: issued certificate does not chain to step-ca's pinned roots: %w: %v",
			backends.ErrBadChain, err)
	}
	if err := backends.CheckLeaf(req, chain); err != nil {
		return nil, nil, fmt.Errorf("stepca: issued certificate: %w; check the provisioner template and "+
			"disableSmallstepExtensions (docs/stepca.md)", err)
	}
	return chain, st.roots, nil
}

// verifyChain verifies leaf up to a root in pool and returns the shortest verified chain, root last.
func verifyChain(pool *x509.CertPool, leaf *x509.Certificate, intermediates []*x509.Certificate) ([]*x509.Certificate,
	error) {
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, err
	}
	best := chains[0]
	for _, c := range chains[1:] {
		if len(c) < len(best) {
			best = c
		}
	}
	return best, nil
}

// sameSANs reports whether the given SANs are req's, in the same order.
func sameSANs(uris []*url.URL, dns []string, ips []net.IP, req *backends.SignRequest) bool {
	if len(uris) != len(req.URIs) || len(ips) != len(req.IPAddresses) {
		return false
	}
	for i := range uris {
		if uris[i].String() != req.URIs[i].String() {
			return false
		}
	}
	for i := range ips {
		if !ips[i].Equal(req.IPAddresses[i]) {
			return false
		}
	}
	return slices.Equal(dns, req.DNSNames)
}

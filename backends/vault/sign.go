package vault

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/csr"
)

func signPath(c *Config) string {
	p := c.Mount
	if c.IssuerRef != "" {
		p += "/issuer/" + c.IssuerRef
	}
	if c.Mode == ModeSignVerbatim {
		p += "/sign-verbatim"
		if c.Role != "" {
			p += "/" + c.Role
		}
		return p
	}
	return p + "/sign/" + c.Role
}

// Sign issues a certificate through Vault. Before anything is sent, every URI SAN must be a SPIFFE ID of the
// exact shape spiffe://<td>/ns/<ns>/sa/<sa>; afterwards the leaf must chain to the trust anchors and be
// exactly the requested workload certificate (backends.CheckLeaf): nothing is returned otherwise. A lifetime
// shorter than requested (Vault caps TTLs at the role's max_ttl without saying so) is logged as a warning.
func (b *Backend) Sign(ctx context.Context, req *backends.SignRequest) (*backends.SignResponse, error) {
	if err := b.checkRequest(req); err != nil {
		return nil, err
	}
	st, err := b.state()
	if err != nil {
		return nil, err
	}
	start := b.cfg.Clock()
	sec, err := b.write(ctx, "signing", b.signPath, b.signData(req))
	if err != nil {
		return nil, err
	}
	resp, err := b.parseSigned(sec, req, st, start)
	if err != nil {
		return nil, err
	}
	leaf := resp.Leaf()
	if want := start.Add(req.TTL); leaf.NotAfter.Before(want.Add(-2 * time.Second)) {
		b.cfg.Logger.Warn("vault issued a shorter lifetime than requested: raise the role's max_ttl (or renew the "+
			"issuer if it expires sooner) or lower meshca's maximum TTL",
			"mount", b.cfg.Mount, "role", b.cfg.Role, "requested_ttl", req.TTL.String(),
			"granted_ttl", leaf.NotAfter.Sub(start).Round(time.Second).String(), "not_after", leaf.NotAfter.UTC(),
			"serial", serialHex(leaf.SerialNumber))
	}
	return resp, nil
}

// checkRequest refuses, before anything reaches Vault, what Vault must not be asked to sign.
func (b *Backend) checkRequest(req *backends.SignRequest) error {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("vault: %w: "+format, append([]any{backends.ErrRefused}, args...)...)
	}
	if req == nil || req.CSR == nil {
		return refuse("the request carries no CSR, and Vault signs only CSRs")
	}
	if !backends.SameKey(req.PublicKey, req.CSR.PublicKey) {
		return refuse("the public key to certify is not the CSR's key, and Vault certifies the CSR's key")
	}
	if req.TTL < time.Second {
		return refuse("ttl %s must be at least 1s", req.TTL)
	}
	if len(req.URIs) == 0 && len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 {
		return refuse("the request has no SAN")
	}
	for _, u := range req.URIs {
		if _, err := csr.ParseURI(u); err != nil {
			return fmt.Errorf("vault: %w: URI SAN: %w", backends.ErrRefused, err)
		}
	}
	for _, d := range req.DNSNames {
		if d == "" || strings.ContainsAny(d, ", ") {
			return refuse("DNS SAN %q is empty or holds a comma or space", d)
		}
	}
	if strings.ContainsAny(req.Subject.CommonName, ",") {
		return refuse("common name %q holds a comma", req.Subject.CommonName)
	}
	if b.cfg.Mode == ModeSignVerbatim {
		// sign-verbatim copies the CSR's SANs: they must be exactly meshca's decision.
		if !req.CSRNamesExactly() {
			return refuse("mode sign-verbatim copies the CSR's SANs, and they differ from the SANs meshca decided")
		}
	}
	return nil
}

func (b *Backend) signData(req *backends.SignRequest) map[string]any {
	d := map[string]any{
		"csr":    string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})),
		"ttl":    fmt.Sprintf("%ds", int64(req.TTL/time.Second)),
		"format": "pem",
	}
	if b.cfg.Mode == ModeSignVerbatim {
		// Without ext_key_usage sign-verbatim issues no EKU at all; Istio needs both. keyEncipherment is
		// meaningful for RSA keys only (backends.CheckLeaf refuses it on others).
		d["ext_key_usage"] = []string{"ServerAuth", "ClientAuth"}
		d["key_usage"] = []string{"DigitalSignature"}
		if _, ok := req.PublicKey.(*rsa.PublicKey); ok {
			d["key_usage"] = []string{"DigitalSignature", "KeyEncipherment"}
		}
		return d
	}
	d["exclude_cn_from_sans"] = true
	if req.Subject.CommonName != "" {
		d["common_name"] = req.Subject.CommonName
	}
	if len(req.URIs) > 0 {
		d["uri_sans"] = uriStrings(req.URIs) // a comma-string-slice field: a JSON array is taken as is
	}
	if len(req.DNSNames) > 0 {
		d["alt_names"] = strings.Join(req.DNSNames, ",") // a plain string field: commas were refused above
	}
	if len(req.IPAddresses) > 0 {
		d["ip_sans"] = ipStrings(req.IPAddresses)
	}
	return d
}

// parseSigned reads Vault's sign response, checks the leaf against req and builds the chain. When the leaf
// was signed by the mount's known issuer, whose chain to the anchors was verified when it was fetched, only the
// leaf is verified (against that issuer) and Vault's ca_chain is not even parsed: signature checks dominate the
// backend's own cost. Otherwise the chain is rebuilt from everything Vault returned.
func (b *Backend) parseSigned(sec *api.Secret, req *backends.SignRequest, ca *caState, now time.Time) (
	*backends.SignResponse, error) {
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("vault: %w: empty response to %s", backends.ErrBadChain, b.signPath)
	}
	leaf, rest, err := parseLeaf(sec.Data)
	if err != nil {
		return nil, err
	}
	at := now
	if at.Before(leaf.NotBefore) { // clocks disagree; the chain must still verify
		at = leaf.NotBefore
	}
	chain, ok := ca.fastChain(leaf, at)
	if !ok {
		candidates, err := parseChainFields(sec.Data)
		if err != nil {
			return nil, err
		}
		candidates = append(append(rest, candidates...), ca.chain...)
		if chain, err = buildChain(leaf, candidates, ca.anchors, at); err != nil {
			return nil, fmt.Errorf("vault: certificate from %s: %w", b.signPath, err)
		}
	}
	if err := b.checkLeaf(req, chain); err != nil {
		return nil, err
	}
	return &backends.SignResponse{Chain: chain, Roots: ca.anchors}, nil
}

// parseIssued reads the certificate, issuing_ca and ca_chain fields of a sign or issuer response: the first
// block of certificate is the leaf (or the issuer), everything else is a chain candidate.
func parseIssued(data map[string]any) (*x509.Certificate, []*x509.Certificate, error) {
	first, rest, err := parseLeaf(data)
	if err != nil {
		return nil, nil, err
	}
	more, err := parseChainFields(data)
	if err != nil {
		return nil, nil, err
	}
	return first, append(rest, more...), nil
}

// parseLeaf reads the certificate field: the leaf first, then any further blocks (format pem_bundle).
func parseLeaf(data map[string]any) (*x509.Certificate, []*x509.Certificate, error) {
	certPEM, _ := data["certificate"].(string)
	if certPEM == "" {
		return nil, nil, fmt.Errorf("vault: %w: the response has no certificate", backends.ErrBadChain)
	}
	certs, err := backends.ParseCertificates([]byte(certPEM))
	if err != nil {
		return nil, nil, fmt.Errorf("vault: %w: certificate: %v", backends.ErrBadChain, err)
	}
	return certs[0], certs[1:], nil
}

// parseChainFields reads the issuing_ca and ca_chain fields, in whatever order and multiplicity Vault sent.
func parseChainFields(data map[string]any) ([]*x509.Certificate, error) {
	var extra []string
	if s, ok := data["issuing_ca"].(string); ok && s != "" {
		extra = append(extra, s)
	}
	switch v := data["ca_chain"].(type) {
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				extra = append(extra, s)
			}
		}
	case []string:
		extra = append(extra, v...)
	}
	var out []*x509.Certificate
	for i, s := range extra {
		cs, err := backends.ParseCertificates([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("vault: %w: ca_chain entry %d: %v", backends.ErrBadChain, i, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// checkLeaf enforces the backend contract with backends.CheckLeaf and adds Istio's need: the leaf must serve
// both sides of mutual TLS. Errors name the role settings that produce the usual mismatches.
func (b *Backend) checkLeaf(req *backends.SignRequest, chain []*x509.Certificate) error {
	if err := backends.CheckLeaf(req, chain); err != nil {
		hint := "check the role: use_csr_sans=false, use_csr_common_name=false, key_usage=DigitalSignature, " +
			"no organization, ou or policy_identifiers (docs/vault.md)"
		if b.cfg.Mode == ModeSignVerbatim {
			hint = "sign-verbatim copies the CSR's subject, SANs and extensions: use mode sign with a role " +
				"(docs/vault.md)"
		}
		return fmt.Errorf("vault: certificate from %s: %w; %s", b.signPath, err, hint)
	}
	leaf := chain[0]
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) ||
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return fmt.Errorf("vault: %w: the certificate from %s lacks the serverAuth and clientAuth extended key "+
			"usages: set server_flag and client_flag on the role", backends.ErrBadChain, b.signPath)
	}
	return nil
}

func uriStrings[U interface{ String() string }](us []U) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

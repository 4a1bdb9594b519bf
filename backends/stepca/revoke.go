package stepca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/meshca/meshca/backends"
)

// Revoke revokes a certificate step-ca issued, with a token for /1.0/revoke whose subject is the serial.
// step-ca supports passive revocation only: the serial is recorded and appears in its CRL.
func (b *Backend) Revoke(ctx context.Context, req *backends.RevokeRequest) error {
	if req == nil {
		return fmt.Errorf("stepca: %w: no certificate to revoke", backends.ErrRefused)
	}
	serial := req.SerialNumber
	if serial == nil && req.Certificate != nil {
		serial = req.Certificate.SerialNumber
	}
	if serial == nil {
		return fmt.Errorf("stepca: %w: revoke needs a serial number or the certificate", backends.ErrRefused)
	}
	if req.Reason < 0 || req.Reason > 10 || req.Reason == 7 {
		return fmt.Errorf("stepca: %w: revocation reason %d is not an RFC 5280 §5.3.1 reason code",
			backends.ErrRefused, req.Reason)
	}
	now := b.cfg.Clock().UTC()
	tok, err := b.minter.mint(now, b.minter.audience(b.base, "revoke"), serial.String(), nil, "")
	if err != nil {
		return err
	}
	body := revokeRequest{Serial: serial.String(), OTT: tok, ReasonCode: req.Reason, Passive: true}
	var resp struct {
		Status string `json:"status"`
	}
	if err := b.call(ctx, "revoke", http.MethodPost, "/1.0/revoke", body, &resp, maxResponse); err != nil {
		return err
	}
	b.cfg.Logger.Info("stepca: certificate revoked", "serial", serial.String(), "reason", req.Reason)
	return nil
}

// CRL returns step-ca's current DER CRL from /1.0/crl after checking it is signed by step-ca's signing CA.
// step-ca serves a CRL only when ca.json has crl.enabled; otherwise CRL fails with ErrRefused.
func (b *Backend) CRL(ctx context.Context) ([]byte, error) {
	der, err := b.get(ctx, "crl", "/1.0/crl", maxCRLResponse)
	if err != nil {
		if errors.Is(err, backends.ErrRefused) {
			return nil, fmt.Errorf("%w (is crl.enabled set in step-ca's ca.json?)", err)
		}
		return nil, err
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("stepca: step-ca's CRL does not parse: %w", err)
	}
	chain, err := b.CAChain(ctx)
	if err != nil {
		return nil, err
	}
	for _, ca := range chain {
		if rl.CheckSignatureFrom(ca) == nil {
			return der, nil
		}
	}
	return nil, fmt.Errorf("stepca: step-ca's CRL (issuer %s) is not signed by its CA chain: %w", rl.Issuer,
		backends.ErrBadChain)
}

// Check reports whether step-ca answers /health and the provisioner credential is usable (an X5C credential
// with less than a minute left is not).
func (b *Backend) Check(ctx context.Context) error {
	_, limit, err := b.minter.window()
	if err != nil {
		return fmt.Errorf("stepca: x5c credential: %w: %w", backends.ErrUnavailable, err)
	}
	if !limit.IsZero() && limit.Sub(b.cfg.Clock()) < time.Minute {
		return fmt.Errorf("stepca: the x5c credential %s expires at %s; renew it: %w",
			b.cfg.X5C.CertFile, limit.UTC().Format(time.RFC3339), backends.ErrUnavailable)
	}
	if _, err := b.trust(ctx); err != nil {
		return err
	}
	var h struct {
		Status string `json:"status"`
	}
	if err := b.call(ctx, "health", http.MethodGet, "/health", nil, &h, maxResponse); err != nil {
		return err
	}
	if h.Status != "ok" {
		return fmt.Errorf("stepca: step-ca health is %q: %w", h.Status, backends.ErrUnavailable)
	}
	return nil
}

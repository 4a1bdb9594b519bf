package vault

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"

	"github.com/meshca/meshca/backends"
)

// Revoke revokes a certificate issued by the mount. It sends the certificate when req has it, which also works
// for no_store roles (Vault cannot find their certificates by serial), and the serial otherwise.
func (b *Backend) Revoke(ctx context.Context, req *backends.RevokeRequest) error {
	if _, err := b.state(); err != nil {
		return err
	}
	data := map[string]any{}
	switch {
	case req == nil:
		return fmt.Errorf("vault: %w: no certificate to revoke", backends.ErrRefused)
	case req.Certificate != nil:
		data["certificate"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: req.Certificate.Raw}))
	case req.SerialNumber != nil:
		data["serial_number"] = serialHex(req.SerialNumber)
	default:
		return fmt.Errorf("vault: %w: revocation needs a serial number or a certificate", backends.ErrRefused)
	}
	if _, err := b.write(ctx, "revoking", b.cfg.Mount+"/revoke", data); err != nil {
		if errors.Is(err, backends.ErrRefused) && req.Certificate == nil {
			return fmt.Errorf("%w (a no_store role's certificates can be revoked only by certificate, not by "+
				"serial)", err)
		}
		return err
	}
	b.cfg.Logger.Info("vault revoked certificate", "mount", b.cfg.Mount, "serial", serialOf(req))
	return nil
}

func serialOf(req *backends.RevokeRequest) string {
	if req.Certificate != nil {
		return serialHex(req.Certificate.SerialNumber)
	}
	return serialHex(req.SerialNumber)
}

// CRL returns the issuer's current DER CRL (/v1/<mount>/crl, or the issuer's own with IssuerRef), after checking
// that it parses and is signed by the issuing CA.
func (b *Backend) CRL(ctx context.Context) ([]byte, error) {
	st, err := b.state()
	if err != nil {
		return nil, err
	}
	path := "/v1/" + b.cfg.Mount + "/crl"
	if b.cfg.IssuerRef != "" {
		path = "/v1/" + b.cfg.Mount + "/issuer/" + b.cfg.IssuerRef + "/crl/der"
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	resp, err := b.client.RawRequestWithContext(ctx, b.client.NewRequest(http.MethodGet, path))
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, b.classify(ctx, "fetching the CRL", path, err)
	}
	der, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, b.classify(ctx, "reading the CRL", path, err)
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("vault: the CRL at %s does not parse: %w", path, err)
	}
	if err := rl.CheckSignatureFrom(st.chain[0]); err != nil {
		return nil, fmt.Errorf("vault: the CRL at %s is not signed by the issuing CA: %w", path, err)
	}
	return der, nil
}

// serialHex formats a serial as Vault does: lowercase hex byte pairs joined by colons.
func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	b := n.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

package vault_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/backends/vault/vaulttest"
)

// inCRL reports whether the backend's CRL lists cert, after checking the CRL is the issuer's.
func inCRL(t *testing.T, b *vault.Backend, cert, issuer *x509.Certificate) bool {
	t.Helper()
	der, err := b.CRL(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatalf("CRL: %v", err)
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("CRL does not parse: %v", err)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("CRL is not signed by the intermediate: %v", err)
	}
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

func TestRevocationShowsInCRL(t *testing.T) {
	s := devVault(t)
	t.Run("no_store role, revoked by certificate", func(t *testing.T) {
		p := s.PKI(t, vaulttest.PKIOptions{})
		b := newBackend(t, config(t, s, p))
		resp, err := b.Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour))
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		leaf := resp.Leaf()
		if inCRL(t, b, leaf, p.Intermediate) {
			t.Fatal("certificate is in the CRL before revocation")
		}
		err = b.Revoke(ctxTimeout(t, 10*time.Second), &backends.RevokeRequest{SerialNumber: leaf.SerialNumber})
		if !errors.Is(err, backends.ErrRefused) {
			t.Fatalf("Revoke by serial on a no_store role: %v, want ErrRefused (Vault has no record of the serial)",
				err)
		}
		byCert := &backends.RevokeRequest{SerialNumber: leaf.SerialNumber, Certificate: leaf}
		if err := b.Revoke(ctxTimeout(t, 10*time.Second), byCert); err != nil {
			t.Fatalf("Revoke by certificate: %v", err)
		}
		if !inCRL(t, b, leaf, p.Intermediate) {
			t.Fatal("revoked certificate is not in the CRL")
		}
		// Vault serves the same CRL as PEM without authentication.
		resp2, err := http.Get(s.Addr + "/v1/" + p.Mount + "/crl/pem")
		if err != nil {
			t.Fatal(err)
		}
		defer resp2.Body.Close()
		body, _ := io.ReadAll(resp2.Body)
		blk, _ := pem.Decode(body)
		if resp2.StatusCode != http.StatusOK || blk == nil || blk.Type != "X509 CRL" {
			t.Fatalf("GET /v1/%s/crl/pem without a token: %d %q", p.Mount, resp2.StatusCode, body)
		}
	})
	t.Run("stored role, revoked by serial", func(t *testing.T) {
		p := s.PKI(t, vaulttest.PKIOptions{Store: true})
		b := newBackend(t, config(t, s, p))
		resp, err := b.Sign(ctxTimeout(t, 10*time.Second), request(t, "rsa", testID, time.Hour))
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		bySerial := &backends.RevokeRequest{SerialNumber: resp.Leaf().SerialNumber}
		if err := b.Revoke(ctxTimeout(t, 10*time.Second), bySerial); err != nil {
			t.Fatalf("Revoke by serial: %v", err)
		}
		if !inCRL(t, b, resp.Leaf(), p.Intermediate) {
			t.Fatal("revoked certificate is not in the CRL")
		}
	})
}

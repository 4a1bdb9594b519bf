package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/stepca"
	"github.com/meshca/meshca/backends/stepca/stepcatest"
	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/backends/vault/vaulttest"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/admin"
)

const passID = "spiffe://cluster.local/ns/default/sa/sleep"

// revocationFor wires revocation for one backend as meshca serve does, with the state in a temporary file.
func revocationFor(t testing.TB, name string, b backends.Backend) *revocation {
	t.Helper()
	a := &app{}
	t.Cleanup(a.Close)
	cfg := &Config{CRL: &CRLConfig{StateFile: filepath.Join(t.TempDir(), "revocations.json"),
		Admin: AdminConfig{Disabled: true}}}
	rv, err := a.startRevocation(context.Background(), cfg, []ca.NamedBackend{{Name: name, Backend: b}},
		catest.DiscardLogger(), prometheus.NewRegistry(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rv
}

// signFor has b sign a workload certificate for passID and records it as the issuer does.
func signFor(t *testing.T, rv *revocation, b backends.Backend) []*x509.Certificate {
	t.Helper()
	csrPEM, _ := catest.WorkloadCSR(t, passID)
	block, _ := pem.Decode(csrPEM)
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(passID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := b.Sign(ctx, &backends.SignRequest{CSR: req, PublicKey: req.PublicKey, URIs: []*url.URL{u},
		TTL: time.Hour})
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	rv.Issued(passID, resp.Chain, time.Now())
	return resp.Chain
}

// revokedAtBackend checks that meshca's published CRL of the issuing CA, which is the backend's own, lists the
// leaf, and that a renewal with it is refused as revoked.
func revokedAtBackend(t *testing.T, rv *revocation, chain []*x509.Certificate) {
	t.Helper()
	catest.Eventually(t, 10*time.Second, "the backend's CRL, as meshca publishes it, lists the serial", func() error {
		rv.pub.Refresh(context.Background())
		der, ok := rv.pub.DER(crl.IDOf(chain[1]))
		if !ok {
			return errors.New("no CRL of the issuing CA published")
		}
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			return err
		}
		for _, e := range l.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(chain[0].SerialNumber) == 0 {
				return nil
			}
		}
		return errors.New("serial not listed")
	})
	if err := rv.checkRenewal(context.Background(), chain); !errors.Is(err, crl.ErrRevoked) {
		t.Fatalf("renewal check: %v, want ErrRevoked", err)
	}
}

// Revoking through meshca revokes at Vault, whose CRL meshca publishes for Vault's CA: by identity with a role
// that stores certificates, by certificate with a no_store role (by identity, Vault cannot find the serial: a
// warning says so).
func TestRevocationPassesThroughToVault(t *testing.T) {
	s := vaulttest.Start(t, vaulttest.Options{})
	ctx := context.Background()
	backend := func(p *vaulttest.PKI) *vault.Backend {
		cfg := vault.Config{Address: s.Addr, Mount: p.Mount, Role: p.Role, RootsPEM: p.RootPEM,
			Timeout: 5 * time.Second, Logger: catest.DiscardLogger(),
			Auth: vault.AuthConfig{Method: vault.AuthToken,
				Token: vault.Secret(s.CreateToken(t, time.Hour, true, p.Policy))}}
		b, err := vault.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	t.Run("by identity, with a role that stores certificates", func(t *testing.T) {
		b := backend(s.PKI(t, vaulttest.PKIOptions{Store: true}))
		rv := revocationFor(t, "vault", b)
		chain := signFor(t, rv, b)
		res, err := rv.Revoke(ctx, admin.RevokeRequest{Identity: passID, Reason: "keyCompromise"})
		if err != nil || len(res.Revoked) != 1 || res.Revoked[0].Backend != "vault" || len(res.Warnings) != 0 {
			t.Fatalf("Revoke: %+v, %v; want one certificate revoked at backend vault, no warning", res, err)
		}
		revokedAtBackend(t, rv, chain)
	})
	t.Run("a no_store role is revoked by certificate, and by identity with a warning", func(t *testing.T) {
		b := backend(s.PKI(t, vaulttest.PKIOptions{}))
		rv := revocationFor(t, "vault", b)
		first, second := signFor(t, rv, b), signFor(t, rv, b)
		certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: first[0].Raw}))
		res, err := rv.Revoke(ctx, admin.RevokeRequest{Certificate: certPEM, Reason: "superseded"})
		if err != nil || len(res.Warnings) != 0 {
			t.Fatalf("Revoke by certificate: %+v, %v; want no warning", res, err)
		}
		revokedAtBackend(t, rv, first)
		res, err = rv.Revoke(ctx, admin.RevokeRequest{Identity: passID})
		if err != nil || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], second[0].SerialNumber.Text(16)) {
			t.Fatalf("Revoke by identity: %+v, %v; want a warning naming serial %x", res, err, second[0].SerialNumber)
		}
	})
}

// Revoking through meshca revokes at step-ca, whose CRL meshca publishes for step-ca's CA.
func TestRevocationPassesThroughToStepCA(t *testing.T) {
	s := stepcatest.Start(t, stepcatest.Options{})
	ctx := context.Background()
	b, err := stepca.New(ctx, stepca.Config{URL: s.URL, RootsFile: s.RootsFile, Timeout: 5 * time.Second,
		X5C:    &stepca.X5CConfig{Provisioner: s.X5C.Name, CertFile: s.X5C.CertFile, KeyFile: s.X5C.KeyFile},
		Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rv := revocationFor(t, "stepca", b)
	chain := signFor(t, rv, b)
	res, err := rv.Revoke(ctx, admin.RevokeRequest{Identity: passID, Reason: "keyCompromise"})
	if err != nil || len(res.Revoked) != 1 || res.Revoked[0].Backend != "stepca" || len(res.Warnings) != 0 {
		t.Fatalf("Revoke: %+v, %v; want one certificate revoked at backend stepca, no warning", res, err)
	}
	revokedAtBackend(t, rv, chain)
}

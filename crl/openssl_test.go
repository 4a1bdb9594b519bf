package crl_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
)

// opensslBin returns the openssl binary, which checks CRLs as Envoy's BoringSSL does.
func opensslBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the openssl tool: skipped under -short (make test runs it)")
	}
	p, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is not installed: %v", err)
	}
	return p
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func TestOpenSSLReadsTheCRL(t *testing.T) {
	bin := opensslBin(t)
	e := newEnv(t)
	leaf := e.issue(t, idA, time.Hour)
	req := crl.RevokeRequest{Certificate: leaf, Reason: crl.KeyCompromise}
	if _, err := e.reg.Revoke(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	c := e.crlOf(t)
	path := filepath.Join(t.TempDir(), "crl.der")
	if err := os.WriteFile(path, c.DER, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, bin, "crl", "-inform", "DER", "-noout", "-text", "-in", path)
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Version 2 (0x1)",
		"X509v3 CRL Number",
		"X509v3 Authority Key Identifier",
		fmt.Sprintf("Serial Number: %X", leaf.SerialNumber.Bytes()),
		"Key Compromise",
		"CN = " + e.pki.Inter.Subject.CommonName,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl's reading of the CRL lacks %q:\n%s", want, out)
		}
	}
}

// TestOpenSSLVerifyRefusesRevokedLeaves checks the published ca-crl.pem the way Envoy uses it: CRL_CHECK |
// CRL_CHECK_ALL, so every CA of the chain needs its CRL.
func TestOpenSSLVerifyRefusesRevokedLeaves(t *testing.T) {
	bin := opensslBin(t)
	pe := newPublisher(t)
	dir := t.TempDir()
	good, bad := pe.pki.Leaf(t, idA, time.Hour), pe.pki.Leaf(t, idB, time.Hour)
	req := crl.RevokeRequest{Certificate: bad, Reason: crl.KeyCompromise}
	if _, err := pe.env.reg.Revoke(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if rep := pe.pub.Refresh(context.Background()); !rep.Complete {
		t.Fatal(rep.Err)
	}
	bundle, _ := pe.pub.PEM()
	full := filepath.Join(dir, "ca-crl.pem")
	if err := os.WriteFile(full, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	interDER, _ := pe.pub.DER(crl.IDOf(pe.pki.Inter))
	interOnly := filepath.Join(dir, "intermediate-only.pem")
	if err := os.WriteFile(interOnly, crl.EncodeBundle(interDER), 0o600); err != nil {
		t.Fatal(err)
	}
	root := crltest.WritePEM(t, dir, "root.pem", pe.pki.Root)
	inter := crltest.WritePEM(t, dir, "inter.pem", pe.pki.Inter)
	goodPath, badPath := crltest.WritePEM(t, dir, "good.pem", good), crltest.WritePEM(t, dir, "bad.pem", bad)
	for _, tc := range []struct {
		name, crls, leaf string
		ok               bool
		reason           string
	}{
		{"a good leaf is accepted with the published CRLs", full, goodPath, true, ""},
		{"the revoked leaf is refused", full, badPath, false, "certificate revoked"},
		{"without the root's CRL even a good leaf is refused", interOnly, goodPath, false,
			"unable to get certificate CRL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, bin, "verify", "-crl_check_all", "-CRLfile", tc.crls, "-CAfile", root,
				"-untrusted", inter, tc.leaf)
			if tc.ok {
				if err != nil {
					t.Fatalf("openssl verify refused: %v\n%s", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(out, tc.reason) {
				t.Fatalf("openssl verify: %v, want a refusal saying %q:\n%s", err, tc.reason, out)
			}
		})
	}
}

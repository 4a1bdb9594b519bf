package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshca/meshca/internal/testpki"
)

// serve --dev puts /crl of its HTTP port in every leaf as the CRL distribution point: fetching it gives the
// issuing CA's signed CRL, which lists a certificate once it is revoked; openssl reads the extension and, with
// -crl_download, refuses the revoked leaf and accepts a good one.
func TestDevLeavesNameTheirCRL(t *testing.T) {
	d := startDev(t)
	defer d.shutdown(t)
	d.waitReady(t)
	good, err := d.request(t, "default", "good", nil)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := d.request(t, "default", "bad", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://" + d.httpAddr + "/crl"}
	if got := good.chain[0].CRLDistributionPoints; !slices.Equal(got, want) {
		t.Fatalf("leaf CRL distribution points %q, want %q", got, want)
	}
	listed := func(c *issued) bool {
		t.Helper()
		resp, err := http.Get(c.chain[0].CRLDistributionPoints[0])
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		if _, err := body.ReadFrom(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET the distribution point: %d %v", resp.StatusCode, err)
		}
		l, err := x509.ParseRevocationList(body.Bytes())
		if err != nil {
			t.Fatalf("the distribution point does not serve a DER CRL: %v", err)
		}
		if err := l.CheckSignatureFrom(c.chain[1]); err != nil {
			t.Fatalf("the CRL at the distribution point is not the issuing CA's: %v", err)
		}
		return slices.ContainsFunc(l.RevokedCertificateEntries, func(e x509.RevocationListEntry) bool {
			return e.SerialNumber.Cmp(c.chain[0].SerialNumber) == 0
		})
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"revoke", "--serial", bad.chain[0].SerialNumber.Text(16),
		"--admin-addr", d.adminAddr, "--admin-token-file", d.tokenFile()}, &stdout, &stderr); code != 0 {
		t.Fatalf("revoke: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if !listed(bad) || listed(good) {
		t.Fatalf("after revoking the bad leaf: bad listed %v, good listed %v; want true, false", listed(bad),
			listed(good))
	}
	if testing.Short() {
		return
	}
	opensslDownloadsTheCRL(t, d, good, bad)
}

// opensslDownloadsTheCRL checks good and bad with openssl verify -crl_check_all -crl_download: the leaf's CRL
// comes from its distribution point, the root's (the dev intermediate names no distribution point) from a file.
func opensslDownloadsTheCRL(t *testing.T, d *devServer, good, bad *issued) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is not installed: %v", err)
	}
	dir := t.TempDir()
	root, inter := good.chain[len(good.chain)-1], good.chain[1]
	_, bundle := d.get(t, "/crl.pem")
	var rootCRL []byte
	for rest := bundle; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if l, err := x509.ParseRevocationList(block.Bytes); err == nil && l.CheckSignatureFrom(root) == nil {
			rootCRL = pem.EncodeToMemory(block)
		}
	}
	if rootCRL == nil {
		t.Fatalf("/crl.pem holds no CRL of the root:\n%s", bundle)
	}
	rootCRLPath := filepath.Join(dir, "root-crl.pem")
	if err := os.WriteFile(rootCRLPath, rootCRL, 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name string, c *x509.Certificate) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, testpki.CertsPEM(c), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootPath, interPath := write("root.pem", root), write("inter.pem", inter)
	goodPath, badPath := write("good.pem", good.chain[0]), write("bad.pem", bad.chain[0])
	out, err := exec.Command(bin, "x509", "-noout", "-text", "-in", goodPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "X509v3 CRL Distribution Points") ||
		!strings.Contains(string(out), "URI:http://"+d.httpAddr+"/crl") {
		t.Fatalf("openssl x509 -text does not show the distribution point: %v\n%s", err, out)
	}
	verify := func(leaf string) (string, error) {
		out, err := exec.Command(bin, "verify", "-crl_check_all", "-crl_download", "-CRLfile", rootCRLPath,
			"-CAfile", rootPath, "-untrusted", interPath, leaf).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(goodPath); err != nil {
		t.Errorf("openssl verify -crl_download refused the good leaf: %v\n%s", err, out)
	}
	if out, err := verify(badPath); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify -crl_download: %v, want the revoked leaf refused:\n%s", err, out)
	}
}

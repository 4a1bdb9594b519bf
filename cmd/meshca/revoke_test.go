package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshca/meshca/crl"
)

// meshca revoke and meshca crl against serve --dev: revoking an identity lists its certificates in the CRL at
// once, refuses their renewal and quarantines the identity; revoking a serial does the same for one
// certificate; mistakes are usage errors; the workload-facing HTTP port does not carry the admin API.
func TestRevokeAndCRLCommandsAgainstServeDev(t *testing.T) {
	d := startDev(t)
	defer d.shutdown(t)
	d.waitReady(t)
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append(args, "--admin-addr", d.adminAddr, "--admin-token-file", d.tokenFile())
		code := run(context.Background(), args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	const sleep = "spiffe://cluster.local/ns/default/sa/sleep"
	var sleeps []*issued
	for range 2 {
		c, err := d.request(t, "default", "sleep", nil)
		if err != nil {
			t.Fatal(err)
		}
		sleeps = append(sleeps, c)
	}
	other, err := d.request(t, "default", "other", nil)
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := cli("revoke", "--identity", sleep, "--reason", "keyCompromise", "--quarantine", "1h")
	if code != 0 {
		t.Fatalf("revoke --identity: exit %d: %s%s", code, out, errOut)
	}
	for _, c := range sleeps {
		if !strings.Contains(out, c.chain[0].SerialNumber.Text(16)) || !strings.Contains(out, "quarantined until") {
			t.Fatalf("revoke --identity output lacks serial %x or the quarantine:\n%s", c.chain[0].SerialNumber, out)
		}
	}
	inCRL := func(serial *big.Int) bool {
		t.Helper()
		code, body := d.get(t, "/crl")
		if code != http.StatusOK {
			t.Fatalf("/crl: %d", code)
		}
		l, err := x509.ParseRevocationList(body)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range l.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(serial) == 0 {
				return e.ReasonCode == int(crl.KeyCompromise)
			}
		}
		return false
	}
	for _, c := range sleeps {
		if !inCRL(c.chain[0].SerialNumber) {
			t.Errorf("serial %x is not in /crl with reason keyCompromise right after the revocation",
				c.chain[0].SerialNumber)
		}
		if _, err := d.request(t, "default", "sleep", c); status.Code(err) != codes.Unauthenticated {
			t.Errorf("renewal with a revoked certificate: %v, want Unauthenticated", err)
		}
	}
	if inCRL(other.chain[0].SerialNumber) {
		t.Fatal("another identity's certificate is revoked too")
	}
	_, err = d.request(t, "default", "sleep", nil)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "quarantined") {
		t.Fatalf("a new certificate for the quarantined identity: %v, want PermissionDenied saying quarantined", err)
	}

	serial := other.chain[0].SerialNumber.Bytes()
	var colons []string
	for _, b := range serial {
		colons = append(colons, fmt.Sprintf("%02x", b))
	}
	if code, out, errOut := cli("revoke", "--serial", strings.Join(colons, ":"), "--reason", "superseded"); code != 0 {
		t.Fatalf("revoke --serial: exit %d: %s%s", code, out, errOut)
	}
	if _, err := d.request(t, "default", "other", other); status.Code(err) != codes.Unauthenticated {
		t.Errorf("renewal with a certificate revoked by serial: %v, want Unauthenticated", err)
	}

	code, out, errOut = cli("crl")
	if code != 0 || strings.Count(out, "current") != 2 || !strings.Contains(out, "meshca") {
		t.Fatalf("meshca crl: exit %d, want 2 current CRLs:\n%s%s", code, out, errOut)
	}
	_, pemBody := d.get(t, "/crl.pem")
	if code, out, _ := cli("crl", "--pem"); code != 0 || out != string(pemBody) {
		t.Fatalf("meshca crl --pem: exit %d, output differs from /crl.pem", code)
	}

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"both a serial and an identity", []string{"revoke", "--serial", "01", "--identity", sleep}},
		{"neither a serial nor an identity", []string{"revoke"}},
		{"an unknown reason", []string{"revoke", "--serial", "01", "--reason", "bored"}},
		{"a serial meshca never issued, without its CA", []string{"revoke", "--serial", "0badc0ffee"}},
		{"a quarantine with a serial", []string{"revoke", "--serial", "01", "--quarantine", "1h"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, out, errOut := cli(tc.args...); code != 2 {
				t.Fatalf("exit %d, want 2 (usage): %s%s", code, out, errOut)
			}
		})
	}
	resp, err := http.Post("http://"+d.httpAddr+"/v1/revoke", "application/json",
		strings.NewReader(`{"identity":"`+"spiffe://cluster.local/ns/default/sa/other"+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("the workload-facing HTTP port accepts revocations")
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshca/meshca/crl"
)

// meshca revoke and meshca crl work offline on a stopped single instance's files (--state, --cacerts), and
// refuse to touch the state while a meshca runs on it.
func TestOfflineRevokeAndCRL(t *testing.T) {
	d := startDev(t)
	d.waitReady(t)
	victim, err := d.request(t, "default", "sleep", nil)
	if err != nil {
		t.Fatal(err)
	}
	state, cacerts := filepath.Join(d.dir, "revocations.json"), filepath.Join(d.dir, "cacerts")
	certFile := filepath.Join(t.TempDir(), "victim.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: victim.chain[0].Raw}),
		0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append(args, "--state", state, "--cacerts", cacerts), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	if code, _, errOut := cli("revoke", "--cert", certFile); code != 1 || !strings.Contains(errOut, "--admin-addr") {
		t.Fatalf("offline revoke while meshca runs: exit %d, %q; want 1 pointing at the admin API", code, errOut)
	}
	d.shutdown(t)

	if code, out, errOut := cli("revoke", "--cert", certFile, "--reason", "keyCompromise"); code != 0 ||
		!strings.Contains(out, victim.chain[0].SerialNumber.Text(16)) {
		t.Fatalf("offline revoke: exit %d: %s%s", code, out, errOut)
	}
	code, out, errOut := cli("crl", "--pem")
	if code != 0 {
		t.Fatalf("offline crl --pem: exit %d: %s", code, errOut)
	}
	lists, err := crl.ParseBundle([]byte(out))
	if err != nil || len(lists) != 2 {
		t.Fatalf("offline ca-crl.pem: %d CRLs, %v; want the intermediate's and the root's", len(lists), err)
	}
	if !crl.Matches(lists[0], victim.chain[1]) || len(lists[0].RevokedCertificateEntries) != 1 ||
		lists[0].RevokedCertificateEntries[0].SerialNumber.Cmp(victim.chain[0].SerialNumber) != 0 {
		t.Fatal("the intermediate's CRL does not list exactly the revoked certificate")
	}
	if code, out, _ := cli("crl"); code != 0 || strings.Count(out, "current") != 2 {
		t.Fatalf("offline crl: exit %d:\n%s", code, out)
	}
}

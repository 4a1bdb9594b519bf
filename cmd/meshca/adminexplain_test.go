package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl/admin"
	"github.com/meshca/meshca/internal/admintoken"
)

// TestPolicyExplainThroughAdminAPI: policy explain --admin-addr against serve --dev prints what explain --dev
// prints, with the same exit code, for a served and a refused request; a reload of policy.yaml is seen by the
// admin API's answer; malformed or over-long requests get 400 (exit 2 from the CLI) with a bounded message;
// the workload-facing HTTP port does not carry the call.
func TestPolicyExplainThroughAdminAPI(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"init", "--dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("init: %d %s", code, stderr.String())
	}
	writeFile(t, filepath.Join(dir, DevPolicyFile),
		"policy:\n  rules:\n  - {name: freeze, match: {namespaces: [payments]}, deny: {reason: incident 7}}\n")
	csrPEM, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/sleep")
	csrFile := filepath.Join(t.TempDir(), "sleep.csr")
	writeFile(t, csrFile, string(csrPEM))
	d := startDevIn(t, dir)
	defer d.shutdown(t)
	d.waitReady(t)
	cli := func(args ...string) (int, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"policy", "explain"}, args...), &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}

	for _, tt := range []struct {
		name, ns string
		extra    []string
		code     int
		want     string
	}{
		{"a request in an unfrozen namespace is served", "default", nil, 0, "decision: allow by rule default"},
		{"a request in the frozen namespace is refused", "payments", nil, 3, "decision: deny by rule freeze"},
		{"a refused request explained as JSON", "payments", []string{"--json"}, 3, `"rule": "freeze"`},
		{"a served request with a lifetime and key type", "default",
			[]string{"--ttl", "2h", "--key-type", "ECDSA-P256"}, 0, "lifetime 2h"},
		{"a request with an unknown CertSigner is refused", "default", []string{"--cert-signer", "x"}, 3,
			"reason unknown_signer"},
		{"a request with the workload's CSR is served", "default", []string{"--csr", csrFile}, 0, "CSR key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--namespace", tt.ns, "--service-account", "sleep"}, tt.extra...)
			devCode, devOut := cli(append(args, "--dev", dir)...)
			code, out := cli(append(args, "--admin-addr", d.adminAddr, "--admin-token-file", d.tokenFile())...)
			if code != tt.code || devCode != tt.code || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d (--dev: %d), want %d and %q; output:\n%s", code, devCode, tt.code, tt.want, out)
			}
			if out != devOut {
				t.Fatalf("--admin-addr and --dev print differently:\n%s\n--dev:\n%s", out, devOut)
			}
		})
	}

	writeFile(t, filepath.Join(dir, DevPolicyFile),
		"policy:\n  rules:\n  - {name: freeze-all, match: {namespaces: ['*']}, deny: {reason: incident 8}}\n")
	catest.Eventually(t, 20*time.Second, "the admin API answers with the reloaded policy", func() error {
		if code, out := cli("--admin-addr", d.adminAddr, "--admin-token-file", d.tokenFile(), "--namespace", "default",
			"--service-account",
			"sleep"); code != 3 || !strings.Contains(out, "decision: deny by rule freeze-all") {
			return fmt.Errorf("exit %d:\n%s", code, out)
		}
		return nil
	})

	long := strings.Repeat("n", 4000)
	tok, err := admintoken.Read(d.tokenFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, body string }{
		{"a body that is not JSON", "{"},
		{"an unknown field", `{"namespace":"a","serviceAccount":"b","bogus":1}`},
		{"no namespace", `{"serviceAccount":"b"}`},
		{"an over-long namespace", `{"namespace":"` + long + `","serviceAccount":"b"}`},
		{"an over-long label value", `{"namespace":"a","serviceAccount":"b","namespaceLabels":{"k":"` + long + `"}}`},
		{"an unknown key type", `{"namespace":"a","serviceAccount":"b","keyType":"` + long[:60] + `"}`},
		{"a lifetime that is not a duration", `{"namespace":"a","serviceAccount":"b","ttl":"soon"}`},
		{"a CSR that does not parse", `{"namespace":"a","serviceAccount":"b","csr":"not a CSR"}`},
		{"both a CSR and a key type", `{"namespace":"a","serviceAccount":"b","csr":"x","keyType":"RSA-2048"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, "http://"+d.adminAddr+admin.ExplainPath,
				strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			admintoken.Set(req, tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest || len(b) > 1024 || strings.Contains(string(b), long[:300]) {
				t.Fatalf("status %d, want 400 with a bounded message; body (%d bytes): %.300s", resp.StatusCode,
					len(b), b)
			}
		})
	}
	if code, out := cli("--admin-addr", d.adminAddr, "--admin-token-file", d.tokenFile(), "--namespace", long,
		"--service-account", "sleep"); code != 2 {
		t.Errorf("an over-long namespace through the CLI: exit %d, want 2 (a usage mistake):\n%.500s", code, out)
	}
	if code, out := cli("--admin-addr", d.adminAddr, "--dev", dir, "--namespace", "a",
		"--service-account", "b"); code != 2 {
		t.Errorf("--admin-addr with --dev: exit %d, want 2:\n%s", code, out)
	}
	resp, err := http.Post("http://"+d.httpAddr+admin.ExplainPath, "application/json",
		strings.NewReader(`{"namespace":"default","serviceAccount":"sleep"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("the workload-facing HTTP port answered the explain call")
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshca/meshca/ca/catest"
)

const policyConfig = "testdata/policy/config.yaml"

// TestPolicyExplainGolden: explain prints the trace and decision written by hand in testdata/policy (from
// docs/policy.md), and exits 0 when the request would be served, 3 when it would be refused.
func TestPolicyExplainGolden(t *testing.T) {
	dir := t.TempDir()
	csrFile := func(dns string) string {
		p := filepath.Join(dir, dns+".csr")
		pemCSR, _ := catest.CSR(t, catest.CSROptions{URIs: []string{"spiffe://cluster.local/ns/web/sa/frontend"},
			DNS: []string{dns}})
		writeFile(t, p, string(pemCSR))
		return p
	}
	before := "--at=2026-11-30T12:00:00Z"
	for _, tt := range []struct {
		name, golden string
		args         []string
		code         int
	}{
		{"a routed signer goes to its own backend, lifetime clamped", "signer-routed",
			[]string{"-n=finance", "--cert-signer=finance", "--key-type=ECDSA-P256", "--ttl=48h", before}, 0},
		{"a signer no rule routes is refused as unknown", "signer-unknown",
			[]string{"-n=default", "--sa=sleep", "--cert-signer=finance", before}, 3},
		{"a frozen namespace is denied with the reason", "frozen", []string{"-n=payments", "--sa=api", before}, 3},
		{"the freeze lapses at its until", "freeze-lapsed",
			[]string{"-n=payments", "--sa=api", "--at=2026-12-02T00:00:00Z"}, 0},
		{"a name the constraints deny is refused though a template gives it", "name-constraint",
			[]string{"-n=web", "--sa=frontend", "--csr=" + csrFile("admin.web.example.com"), before}, 3},
		{"a name a template gives and the constraints accept is issued", "template-allowed",
			[]string{"-n=web", "--sa=frontend", "--csr=" + csrFile("frontend.web.svc"), before}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"policy", "explain", "--config", policyConfig}
			for _, a := range tt.args {
				a = strings.Replace(a, "-n=", "--namespace=", 1)
				a = strings.Replace(a, "--sa=", "--service-account=", 1)
				args = append(args, a)
			}
			if !strings.Contains(strings.Join(args, " "), "--service-account") {
				args = append(args, "--service-account=ledger")
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr %s", code, tt.code, stderr.String())
			}
			want, err := os.ReadFile(filepath.Join("testdata/policy", tt.golden+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			if got := stdout.String(); got != string(want) {
				t.Errorf("output:\n%s\nwant (testdata/policy/%s.golden):\n%s", got, tt.golden, want)
			}
		})
	}
}

// TestPolicyExplainJSON: --json carries the same decision, with the code and reason serve would answer.
func TestPolicyExplainJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"policy", "explain", "--config", policyConfig, "--json",
		"--namespace", "payments", "--service-account", "api", "--at", "2026-11-30T12:00:00Z"}, &stdout, &stderr)
	if code != 3 {
		t.Fatalf("exit code %d, want 3; stderr %s", code, stderr.String())
	}
	var got struct {
		Identity, Rule, Code, Reason, Error string
		Allowed                             bool
		Trace                               []struct{ Check, Result, Why string }
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	if got.Identity != "spiffe://cluster.local/ns/payments/sa/api" || got.Rule != "freeze-payments" || got.Allowed ||
		got.Code != "PermissionDenied" || got.Reason != "policy_denied" ||
		!strings.Contains(got.Error, "incident 42") ||
		len(got.Trace) != 2 || got.Trace[1].Check != "deny" {
		t.Errorf("JSON decision %+v", got)
	}
}

// TestPolicyExplainMistakes: usage mistakes exit 2, a configuration that fails validation exits 1 and
// names the key.
func TestPolicyExplainMistakes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "issuance: {trustDomain: cluster.local}\n"+okServer+
		"policy: {rules: [{name: a, backends: [vault]}]}\n")
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no namespace", []string{"--config", policyConfig, "--service-account", "a"}, 2, "namespace"},
		{"an unknown key type", []string{"--config", policyConfig, "-n", "a", "--sa", "a", "--key-type", "DSA"}, 2,
			"--key-type"},
		{"an invalid namespace", []string{"--config", policyConfig, "-n", "A B", "--sa", "a"}, 2, "--namespace"},
		{"bad namespace labels", []string{"--config", policyConfig, "-n", "a", "--sa", "a",
			"--namespace-labels", "novalue"}, 2, "--namespace-labels"},
		{"both --csr and --key-type", []string{"--config", policyConfig, "-n", "a", "--sa", "a", "--csr", "x",
			"--key-type", "RSA-2048"}, 2, "csr key-type"},
		{"a rule routing to an unknown backend", []string{"--config", bad, "-n", "a", "--sa", "a"}, 1,
			"policy.rules[0].backends[0]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"policy", "explain"}
			for _, a := range tt.args {
				args = append(args, map[string]string{"-n": "--namespace", "--sa": "--service-account"}[a]+
					map[bool]string{true: "", false: a}[a == "-n" || a == "--sa"])
			}
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, &stdout, &stderr); code != tt.code {
				t.Errorf("exit code %d, want %d; stderr %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tt.stderr)
			}
		})
	}
}

// FuzzParseLabels: --namespace-labels never panics, and what it accepts round-trips: every pair it returns
// was in the input as key=value.
func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"a=b", "a=b,c=d", "a=", "=b", "a", "a=b,a=c", ",", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		labels, err := parseLabels(s)
		if err != nil {
			return
		}
		parts := strings.Split(s, ",")
		if len(labels) != len(parts) {
			t.Fatalf("%q gave %d labels from %d pairs", s, len(labels), len(parts))
		}
		for k, v := range labels {
			if k == "" || !strings.Contains(","+s+",", ","+k+"="+v+",") {
				t.Fatalf("%q gave %q=%q, not in the input", s, k, v)
			}
		}
	})
}

// TestPolicyExplainDev: explain --dev DIR answers for make run's configuration with the rules of
// DIR/policy.yaml, and refuses a DIR that make run has not created.
func TestPolicyExplainDev(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"init", "--dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("init: %d %s", code, stderr.String())
	}
	writeFile(t, filepath.Join(dir, DevPolicyFile),
		"policy:\n  rules:\n  - {name: freeze, match: {namespaces: [payments]}, deny: {reason: incident 7}}\n")
	for _, tt := range []struct {
		ns, want string
		code     int
	}{
		{"payments", "decision: deny by rule freeze: denied by policy: rule freeze: incident 7\n", 3},
		{"default", "decision: allow by rule default: 24h, signed by file\n", 0},
	} {
		stdout.Reset()
		stderr.Reset()
		code := run(context.Background(), []string{"policy", "explain", "--dev", dir, "--namespace", tt.ns,
			"--service-account", "sleep"}, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.want) {
			t.Errorf("%s: exit %d, output:\n%s%s\nwant exit %d and %q", tt.ns, code, stdout.String(),
				stderr.String(), tt.code, tt.want)
		}
	}
	code := run(context.Background(), []string{"policy", "explain", "--dev", filepath.Join(dir, "none"),
		"--namespace", "a", "--service-account", "a"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "make run") {
		t.Errorf("a missing dev dir: exit %d, stderr %s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); err == nil {
		t.Error("explain created the dev directory")
	}
}

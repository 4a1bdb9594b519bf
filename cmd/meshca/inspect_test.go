package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/expiry"
)

// devCA writes a dev CA (root 10 years, intermediate 1 year) and returns its cacerts directory.
func devCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := initDev(dir, "cluster.local"); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "cacerts")
}

// meshca inspect: help on stdout with exit 0, usage mistakes exit 2, findings exit 1, failed checks 3.
func TestInspectCommand(t *testing.T) {
	cacerts := devCA(t)
	broken := t.TempDir()
	writeFile(t, filepath.Join(broken, "cert.pem"), "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"+
		"-----END CERTIFICATE-----\n")
	cases := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{name: "help lists the flags and the exit statuses", args: []string{"inspect", "--help"}, code: 0,
			stdout: "3 otherwise a check failed"},
		{name: "nothing to inspect is a usage mistake", args: []string{"inspect"}, code: 2,
			stderr: "nothing to inspect"},
		{name: "a threshold of zero is a usage mistake", args: []string{"inspect", "--within", "0", cacerts},
			code: 2, stderr: "positive duration"},
		{name: "a threshold without a unit is a usage mistake", args: []string{"inspect", "--within", "7", cacerts},
			code: 2, stderr: "7d or 36h"},
		{name: "an unknown colour mode lists the valid ones", args: []string{"inspect", "--color", "pink", cacerts},
			code: 2, stderr: "auto, always or never"},
		{name: "an unreadable kubeconfig fails naming it", args: []string{"inspect", "--kubeconfig",
			"/nowhere", "--cacerts-secret", "cacerts"}, code: 1, stderr: "kubeconfig"},
		{name: "a healthy dev CA passes the default threshold", args: []string{"inspect", cacerts}, code: 0,
			stdout: "CN=cluster.local intermediate CA"},
		{name: "a one-year intermediate is within a 400 day threshold", args: []string{"inspect", "--within", "400d",
			cacerts}, code: 1, stdout: "expiring"},
		{name: "a Go duration works as a threshold", args: []string{"inspect", "--within", "9000h", cacerts}, code: 1,
			stdout: "threshold 375d"},
		{name: "an unparsable certificate is a failed check", args: []string{"inspect", broken}, code: 3,
			stdout: "unparsable"},
		{name: "a missing path is a failed check, not a crash", args: []string{"inspect", filepath.Join(broken, "no")},
			code: 3, stdout: "unreadable"},
		{name: "a colourless table when piped", args: []string{"inspect", cacerts}, code: 0, stdout: "DAYS LEFT"},
		{name: "colour on request", args: []string{"inspect", "--color", "always", "--within", "400d", cacerts},
			code: 1, stdout: "\x1b["},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := expectRun(t, tc.args, tc.code, tc.stdout, tc.stderr)
			if tc.name == "a colourless table when piped" && strings.Contains(out, "\x1b[") {
				t.Fatalf("escape sequences in piped output:\n%q", out)
			}
		})
	}
}

// --json prints one JSON document whose exit_code is the process's exit status.
func TestInspectJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := runNoPanic(t, []string{"inspect", "--json", "--within", "400d", devCA(t)}, &stdout, &stderr)
	var r struct {
		ExitCode     int `json:"exit_code"`
		Certificates []struct {
			Warnings []string `json:"warnings"`
		} `json:"certificates"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	if code != expiry.ExitExpiring || r.ExitCode != code || len(r.Certificates) != 4 {
		t.Fatalf("exit %d, exit_code %d, %d certificates; want %d, the same, 4:\n%s", code, r.ExitCode,
			len(r.Certificates), expiry.ExitExpiring, stdout.String())
	}
}

// meshca inspect --kubeconfig reads a real cluster's cacerts Secret and reports it.
func TestInspectCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd (scripts/testbins.sh); skipped in -short")
	}
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	files := map[string][]byte{}
	cacerts := devCA(t)
	for _, f := range caFiles {
		b, err := os.ReadFile(filepath.Join(cacerts, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = b
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := k.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: "cacerts"}, Data: files}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	base := []string{"inspect", "--kubeconfig", k.Kubeconfig, "--namespace", ns, "--cacerts-secret", ns + "/cacerts"}
	for _, tc := range []struct {
		name   string
		within string
		code   int
	}{
		{"the cluster's CA passes the default threshold", "7d", expiry.ExitOK},
		{"the cluster's intermediate is within 400 days", "400d", expiry.ExitExpiring},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runNoPanic(t, append(base, "--within", tc.within), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), ns+"/cacerts") {
				t.Fatalf("exit %d (want %d); want %s/cacerts in the report\nstdout:\n%s\nstderr:\n%s", code, tc.code,
					ns, stdout.String(), stderr.String())
			}
		})
	}
}

func FuzzParseWithin(f *testing.F) {
	for _, s := range []string{"7d", "1.5d", "36h", "0", "-1d", "NaNd", "1e300d", "d", "9999999999h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseWithin(s)
		if err == nil && (d <= 0 || d > maxWithin) {
			t.Fatalf("parseWithin(%q) = %s, outside (0, %s]", s, d, maxWithin)
		}
	})
}

package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshca/meshca/backends/file"
)

// meshca token refuses what the dev issuer should never sign.
func TestTokenRefusesBadClaims(t *testing.T) {
	dir := t.TempDir()
	if code := runNoPanic(t, []string{"init", "--dir", dir}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("init: exit %d", code)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{name: "a negative lifetime", args: []string{"--ttl", "-1h"}, want: "--ttl"},
		{name: "a zero lifetime", args: []string{"--ttl", "0s"}, want: "--ttl"},
		{name: "a namespace that is not a DNS label", args: []string{"--namespace", "Not_A_Namespace"},
			want: "--namespace"},
		{name: "a service account that is not a DNS subdomain", args: []string{"--service-account", "a/b"},
			want: "--service-account"},
		{name: "an empty audience", args: []string{"--audience", ""}, want: "--audience"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runNoPanic(t, append([]string{"token", "--dir", dir}, tc.args...), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (usage); stdout %q stderr %q", code, stdout.String(), stderr.String())
			}
			if stdout.Len() != 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stdout %q, stderr %q: want no token and a message naming %s", stdout.String(),
					stderr.String(), tc.want)
			}
		})
	}
}

// meshca init creates a CA only where there is none, and never hides or replaces part of one.
func TestInitRefusesToReplaceOrHide(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		setup func(t *testing.T, cacerts string)
		want  string
	}{
		{name: "a lone root is not replaced", want: "root-cert.pem",
			setup: func(t *testing.T, cacerts string) {
				writeFile(t, filepath.Join(cacerts, file.RootCertFile), "root")
			}},
		{name: "a broken set is reported, not left alone silently", want: "does not load",
			setup: func(t *testing.T, cacerts string) {
				g, err := file.Generate(file.GenerateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if err := g.WriteDir(cacerts); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(cacerts, file.CACertFile), "garbage")
			}},
		{name: "an invalid trust domain is refused", args: []string{"--trust-domain", "Not A Domain"},
			want: "--trust-domain", setup: func(*testing.T, string) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cacerts := filepath.Join(dir, "cacerts")
			if err := os.MkdirAll(cacerts, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, cacerts)
			before, _ := os.ReadFile(filepath.Join(cacerts, file.RootCertFile))
			var stdout, stderr bytes.Buffer
			code := runNoPanic(t, append([]string{"init", "--dir", dir}, tc.args...), &stdout, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q: want a failure naming %s", code, stderr.String(), tc.want)
			}
			after, _ := os.ReadFile(filepath.Join(cacerts, file.RootCertFile))
			if !bytes.Equal(before, after) {
				t.Fatal("root-cert.pem was replaced")
			}
		})
	}
}

// serve --dev issues in the trust domain the CA was created for with init --trust-domain.
func TestDevModeKeepsInitTrustDomain(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	if code := runNoPanic(t, []string{"init", "--dir", dir, "--trust-domain", "example.org"}, &bytes.Buffer{},
		&stderr); code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr.String())
	}
	cfg, _, err := devConfig(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Issuance.TrustDomain != "example.org" {
		t.Fatalf("dev mode trust domain %q, want example.org from init", cfg.Issuance.TrustDomain)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

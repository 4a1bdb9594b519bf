package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshca/meshca/backends/file"
)

// startupCase is a configuration that must fail before meshca serves anything.
type startupCase struct {
	name string
	// setup writes what the case needs into dir and returns the config file to serve.
	setup func(t *testing.T, dir string) string
	// want are fragments of the real cause that the error message must carry.
	want []string
}

// writeCA writes a valid dev CA (Istio cacerts layout) into dir/cacerts and returns that directory.
func writeCA(t *testing.T, dir string) string {
	t.Helper()
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	cacerts := filepath.Join(dir, "cacerts")
	if err := g.WriteDir(cacerts); err != nil {
		t.Fatal(err)
	}
	return cacerts
}

// configWith writes a loopback config that serves cacerts with the given authn section.
func configWith(t *testing.T, dir, cacerts, authnYAML string) string {
	t.Helper()
	cfg := fmt.Sprintf(`
issuance: {trustDomain: cluster.local}
server: {grpcAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", dnsNames: [localhost]}
authn: %s
backends:
  - name: cacerts
    file: {dir: %q}
`, authnYAML, cacerts)
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const jwksIssuer = `{issuers: [{issuer: "https://issuer.example", jwksFile: %q}]}`

// Every start-up failure ends meshca serve with exit code 1 and the real cause, never a panic.
func TestServeStartupFailuresPrintTheCause(t *testing.T) {
	cases := []startupCase{
		{name: "a cacerts directory that does not exist", want: []string{"missing"},
			setup: func(t *testing.T, dir string) string {
				return configWith(t, dir, filepath.Join(dir, "missing"), fmt.Sprintf(jwksIssuer, writeJWKS(t, dir)))
			}},
		{name: "a broken ca-cert.pem", want: []string{"ca-cert.pem"},
			setup: func(t *testing.T, dir string) string {
				cacerts := writeCA(t, dir)
				if err := os.WriteFile(filepath.Join(cacerts, file.CACertFile), []byte("garbage"), 0o600); err != nil {
					t.Fatal(err)
				}
				return configWith(t, dir, cacerts, fmt.Sprintf(jwksIssuer, writeJWKS(t, dir)))
			}},
		{name: "a ca-key.pem that does not match the certificate", want: []string{"backend cacerts"},
			setup: func(t *testing.T, dir string) string {
				cacerts := writeCA(t, dir)
				other := writeCA(t, t.TempDir())
				key, err := os.ReadFile(filepath.Join(other, file.CAKeyFile))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(cacerts, file.CAKeyFile), key, 0o600); err != nil {
					t.Fatal(err)
				}
				return configWith(t, dir, cacerts, fmt.Sprintf(jwksIssuer, writeJWKS(t, dir)))
			}},
		{name: "a jwksFile that does not exist", want: []string{"nope.json"},
			setup: func(t *testing.T, dir string) string {
				return configWith(t, dir, writeCA(t, dir), fmt.Sprintf(jwksIssuer, filepath.Join(dir, "nope.json")))
			}},
		{name: "the shipped file overlay outside a cluster", want: []string{"kubeconfig"},
			setup: func(t *testing.T, dir string) string { return "../../manifests/overlays/file/config.yaml" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := tc.setup(t, dir)
			var stdout, stderr bytes.Buffer
			code := runNoPanic(t, []string{"serve", "--config", cfg, "--log-format", "text"}, &stdout, &stderr)
			if code != 1 {
				t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks the cause %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

// runNoPanic calls run and turns a panic into a test failure with the panic value.
func runNoPanic(t *testing.T, args []string, stdout, stderr *bytes.Buffer) (code int) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("meshca %s panicked: %v\nstderr:\n%s", strings.Join(args, " "), r, stderr.String())
		}
	}()
	return run(context.Background(), args, stdout, stderr)
}

// writeJWKS writes an empty but well-formed JWKS file and returns its path.
func writeJWKS(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(p, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

package vault_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/vault"
)

func validConfig() vault.Config {
	return vault.Config{
		Address: "https://vault.vault.svc:8200", Mount: "pki_int", Role: "mesh",
		RootFingerprints: []string{strings.Repeat("ab", 32)},
		Auth: vault.AuthConfig{Method: vault.AuthAppRole, RoleID: "r",
			SecretIDFile: "/etc/meshca/secret-id"},
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *vault.Config)
		want []string // every problem must be reported, all at once
	}{
		{"a valid AppRole configuration", func(*vault.Config) {}, nil},
		{"a valid Kubernetes configuration", func(c *vault.Config) {
			c.Auth = vault.AuthConfig{Method: vault.AuthKubernetes, Role: "meshca"}
		}, nil},
		{"a valid sign-verbatim configuration without role", func(c *vault.Config) {
			c.Mode, c.Role = vault.ModeSignVerbatim, ""
		}, nil},
		{"an empty configuration reports everything", func(c *vault.Config) { *c = vault.Config{} },
			[]string{"address is required", "mount is required", "role is required", "trust anchor is not configured",
				"method is required"}},
		{"bad address, mount, mode and timeout", func(c *vault.Config) {
			c.Address, c.Mount, c.Mode, c.Timeout = "vault:8200", "/pki/../x", "issue", -time.Second
		}, []string{"must be an http or https URL", "mount \"/pki/../x\"", "mode \"issue\"", "timeout"}},
		{"a role with a slash", func(c *vault.Config) { c.Role = "a/b" }, []string{"role \"a/b\""}},
		{"a short fingerprint", func(c *vault.Config) { c.RootFingerprints = []string{"abcd"} },
			[]string{"not a SHA-256 fingerprint"}},
		{"both root sources", func(c *vault.Config) { c.RootsFile, c.RootsPEM = "/a", "x" },
			[]string{"only one of rootsFile and rootsPEM"}},
		{"roots PEM that is not PEM", func(c *vault.Config) { c.RootsPEM = "nope" }, []string{"rootsPEM"}},
		{"token method without token", func(c *vault.Config) { c.Auth = vault.AuthConfig{Method: vault.AuthToken} },
			[]string{"exactly one of token and tokenFile"}},
		{"AppRole credentials mixed with a token", func(c *vault.Config) { c.Auth.Token = "t"; c.Auth.SecretID = "s" },
			[]string{"exactly one of secretID and secretIDFile", "token and tokenFile apply only to method token"}},
		{"JWT without file", func(c *vault.Config) { c.Auth = vault.AuthConfig{Method: vault.AuthJWT, Role: "r"} },
			[]string{"needs jwtFile"}},
		{"unknown method", func(c *vault.Config) { c.Auth.Method = "userpass" }, []string{"method \"userpass\""}},
		{"a timeout of exactly 2m and plain http", func(c *vault.Config) {
			c.Timeout, c.Address = 2*time.Minute, "http://127.0.0.1:8200"
		}, nil},
		{"a timeout over 2m", func(c *vault.Config) { c.Timeout = 2*time.Minute + 1 }, []string{"timeout"}},
		{"a negative refresh interval", func(c *vault.Config) { c.RefreshInterval = -1 }, []string{"refreshInterval"}},
		{"an address without host", func(c *vault.Config) { c.Address = "https://" }, []string{"with a host"}},
		{"an address of another scheme", func(c *vault.Config) { c.Address = "ftp://vault" }, []string{"with a host"}},
		{"a mount with an empty segment", func(c *vault.Config) { c.Mount = "pki//int" }, []string{"mount"}},
		{"a mount with a space", func(c *vault.Config) { c.Mount = "pki int" }, []string{"mount"}},
		{"a nested mount", func(c *vault.Config) { c.Mount = "team/pki_int" }, nil},
		{"an issuerRef with a slash", func(c *vault.Config) { c.IssuerRef = "a/b" }, []string{"issuerRef"}},
		{"a role of dots", func(c *vault.Config) { c.Role = ".." }, []string{"role \"..\""}},
		{"a rootsFile alone", func(c *vault.Config) { c.RootFingerprints, c.RootsFile = nil, "/etc/roots.pem" }, nil},
		{"both TLS CA sources", func(c *vault.Config) { c.TLS.CAFile, c.TLS.CAPEM = "/a", "x" },
			[]string{"only one of caFile and caPEM", "tls.caPEM"}},
		{"an auth mount path with a trailing slash", func(c *vault.Config) { c.Auth.MountPath = "approle/" },
			[]string{"mountPath"}},
		{"AppRole without roleID", func(c *vault.Config) { c.Auth.RoleID = "" }, []string{"needs roleID"}},
		{"Kubernetes without role", func(c *vault.Config) { c.Auth = vault.AuthConfig{Method: vault.AuthKubernetes} },
			[]string{"needs role"}},
		{"a valid JWT configuration", func(c *vault.Config) {
			c.Auth = vault.AuthConfig{Method: vault.AuthJWT, Role: "r", JWTFile: "/var/run/token"}
		}, nil},
		{"a token with AppRole and JWT settings", func(c *vault.Config) {
			c.Auth = vault.AuthConfig{Method: vault.AuthToken, TokenFile: "/t", RoleID: "r", JWTFile: "/j"}
		}, []string{"roleID, secretID and secretIDFile apply only", "role and jwtFile apply only"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mod(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted the configuration, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v\nmissing %q", err, w)
				}
			}
		})
	}
}

func TestDecodeConfigIsStrict(t *testing.T) {
	_, err := vault.DecodeConfig([]byte(
		`{"address":"https://v:8200","mount":"pki","role":"r","auth":{"method":"token","tokn":"x"}}`))
	if err == nil || !strings.Contains(err.Error(), "tokn") {
		t.Fatalf("DecodeConfig with a misspelt key: %v, want an unknown-field error", err)
	}
	c, err := vault.DecodeConfig([]byte(`{"address":"https://v:8200","mount":"pki","role":"r","rootFingerprints":["` +
		strings.Repeat("0", 64) + `"],"auth":{"method":"token","token":"hvs.secret"}}`))
	if err != nil {
		t.Fatalf("DecodeConfig: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.Auth.Token != "hvs.secret" {
		t.Fatalf("token not decoded: %q", c.Auth.Token)
	}
}

// Credentials never leave through fmt, JSON or slog.
func TestSecretsAreRedacted(t *testing.T) {
	c := validConfig()
	c.Auth = vault.AuthConfig{Method: vault.AuthAppRole, RoleID: "r", SecretID: "s3cr3t-id"}
	js, _ := json.Marshal(c)
	var logs logBuffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "auth", c.Auth, "secret", c.Auth.SecretID)
	printed := map[string]string{"fmt": fmt.Sprintf("%v %+v", c, c.Auth), "json": string(js), "slog": logs.String()}
	for what, out := range printed {
		if strings.Contains(out, "s3cr3t-id") {
			t.Errorf("%s output holds the secret ID: %s", what, out)
		}
	}
	// A set secret shows as REDACTED and an unset one as empty, so a printed configuration tells them apart.
	if got, unset := vault.Secret("s").String(), vault.Secret("").String(); got != "REDACTED" || unset != "" {
		t.Errorf("Secret strings %q and %q, want REDACTED and empty", got, unset)
	}
}

// TestWithDefaults: the defaults New applies, for meshca config print --defaults.
func TestWithDefaults(t *testing.T) {
	tests := []struct {
		method, mountPath, jwtFile string
	}{
		{vault.AuthToken, "", ""},
		{vault.AuthAppRole, vault.AuthAppRole, ""},
		{vault.AuthKubernetes, vault.AuthKubernetes, "/var/run/secrets/kubernetes.io/serviceaccount/token"},
		{vault.AuthJWT, vault.AuthJWT, ""},
	}
	for _, tt := range tests {
		c := vault.Config{Auth: vault.AuthConfig{Method: tt.method}}.WithDefaults()
		if c.Mode != vault.ModeSign || c.Timeout != vault.DefaultTimeout || c.RefreshInterval != 10*time.Minute ||
			c.Auth.MountPath != tt.mountPath || c.Auth.JWTFile != tt.jwtFile || c.Clock == nil || c.Logger == nil ||
			c.ReadFile == nil {
			t.Errorf("%s: WithDefaults = %+v", tt.method, c)
		}
	}
	c := vault.Config{Mode: vault.ModeSignVerbatim, Timeout: time.Second, RefreshInterval: time.Minute,
		Auth: vault.AuthConfig{Method: vault.AuthKubernetes, MountPath: "k8s", JWTFile: "/t"}}.WithDefaults()
	if c.Mode != vault.ModeSignVerbatim || c.Timeout != time.Second || c.RefreshInterval != time.Minute ||
		c.Auth.MountPath != "k8s" || c.Auth.JWTFile != "/t" {
		t.Errorf("WithDefaults replaced configured values: %+v", c)
	}
}

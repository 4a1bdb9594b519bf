package stepca_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/stepca"
)

func validConfig() stepca.Config {
	jwk := &stepca.JWKConfig{Provisioner: "meshca", KeyFile: "/etc/meshca/jwk.json", PasswordFile: "/etc/meshca/pw"}
	return stepca.Config{
		URL:             "https://step-ca.pki.svc:9000",
		RootFingerprint: strings.Repeat("ab", 32),
		JWK:             jwk,
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*stepca.Config)
		want   []string // fragments of every expected problem; none means valid
	}{
		{name: "a JWK provisioner pinned by fingerprint is valid", mutate: func(*stepca.Config) {}},
		{name: "an X5C provisioner with a roots file is valid", mutate: func(c *stepca.Config) {
			c.RootFingerprint, c.RootsFile = "", "/etc/meshca/roots.pem"
			c.JWK, c.X5C = nil, &stepca.X5CConfig{Provisioner: "meshca", CertFile: "c.pem", KeyFile: "k.pem"}
		}},
		{name: "a fingerprint with colons and uppercase is valid", mutate: func(c *stepca.Config) {
			c.RootFingerprint = strings.ToUpper(strings.Repeat("ab:", 31) + "ab")
		}},
		{name: "plain http is refused", mutate: func(c *stepca.Config) { c.URL = "http://step-ca:9000" },
			want: []string{"https"}},
		{name: "a URL with a path is refused", mutate: func(c *stepca.Config) { c.URL = "https://step-ca/1.0" },
			want: []string{"no path"}},
		{name: "no pinning is refused", mutate: func(c *stepca.Config) { c.RootFingerprint = "" },
			want: []string{"rootFingerprint"}},
		{name: "a short fingerprint is refused", mutate: func(c *stepca.Config) { c.RootFingerprint = "abcd" },
			want: []string{"64 hex digits"}},
		{name: "two provisioners are refused", mutate: func(c *stepca.Config) {
			c.X5C = &stepca.X5CConfig{Provisioner: "x", CertFile: "c", KeyFile: "k"}
		}, want: []string{"only one of jwk and x5c"}},
		{name: "every problem is reported at once", mutate: func(c *stepca.Config) {
			*c = stepca.Config{Timeout: -time.Second, JWK: &stepca.JWKConfig{PasswordFile: "a", PasswordEnv: "B"}}
		}, want: []string{"url is required", "rootFingerprint", "jwk.provisioner", "jwk.keyFile",
			"passwordFile and jwk.passwordEnv", "timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNewValidatesBeforeReadingFiles(t *testing.T) {
	c := validConfig()
	c.URL = ""
	if _, err := stepca.New(context.Background(), c); err == nil || !strings.Contains(err.Error(), "url is required") {
		t.Fatalf("New = %v, want the validation error", err)
	}
}

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
		{name: "a URL ending in a slash is valid", mutate: func(c *stepca.Config) { c.URL = "https://step-ca:9000/" }},
		{name: "a URL without host is refused", mutate: func(c *stepca.Config) { c.URL = "https:///" },
			want: []string{"with a host"}},
		{name: "a URL with a query is refused", mutate: func(c *stepca.Config) { c.URL = "https://step-ca?x=1" },
			want: []string{"query"}},
		{name: "a URL with a fragment is refused", mutate: func(c *stepca.Config) { c.URL = "https://step-ca#x" },
			want: []string{"query"}},
		{name: "a URL with user info is refused", mutate: func(c *stepca.Config) { c.URL = "https://u:p@step-ca" },
			want: []string{"user info"}},
		{name: "both pins are refused", mutate: func(c *stepca.Config) { c.RootsFile = "/r.pem" },
			want: []string{"only one of rootFingerprint and rootsFile"}},
		{name: "a fingerprint that is not hex is refused", mutate: func(c *stepca.Config) {
			c.RootFingerprint = strings.Repeat("zz", 32)
		}, want: []string{"64 hex digits"}},
		{name: "no provisioner is refused", mutate: func(c *stepca.Config) { c.JWK = nil },
			want: []string{"set jwk or x5c"}},
		{name: "an X5C provisioner without name, certificate or key is refused", mutate: func(c *stepca.Config) {
			c.JWK, c.X5C = nil, &stepca.X5CConfig{KeyFile: "k.pem"}
		}, want: []string{"x5c.provisioner", "x5c.certFile and x5c.keyFile"}},
		{name: "an X5C provisioner without key is refused", mutate: func(c *stepca.Config) {
			c.JWK, c.X5C = nil, &stepca.X5CConfig{Provisioner: "x", CertFile: "c.pem"}
		}, want: []string{"x5c.certFile and x5c.keyFile"}},
		{name: "the largest timeout, token lifetime and backdate are valid", mutate: func(c *stepca.Config) {
			c.Timeout, c.TokenLifetime, c.Backdate = 5*time.Minute, 10*time.Minute, time.Hour
		}},
		{name: "a timeout, token lifetime and backdate past their bounds are refused", mutate: func(c *stepca.Config) {
			c.Timeout, c.TokenLifetime, c.Backdate = 5*time.Minute+1, 10*time.Minute+1, time.Hour+1
		}, want: []string{"timeout", "tokenLifetime", "backdate"}},
		{name: "negative durations are refused", mutate: func(c *stepca.Config) {
			c.TokenLifetime, c.Backdate, c.RootsRefresh = -1, -1, -1
		}, want: []string{"tokenLifetime", "backdate", "rootsRefresh"}},
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

// TestWithDefaults: the defaults New applies, for meshca config print --defaults; set values are kept.
func TestWithDefaults(t *testing.T) {
	c := validConfig().WithDefaults()
	if c.Timeout != 5*time.Second || c.TokenLifetime != time.Minute || c.Backdate != 30*time.Second ||
		c.RootsRefresh != time.Hour || c.Clock == nil || c.Getenv == nil || c.Logger == nil {
		t.Fatalf("WithDefaults = %+v", c)
	}
	set := validConfig()
	set.Timeout, set.TokenLifetime, set.Backdate, set.RootsRefresh = 1, 2, 3, 4
	if c := set.WithDefaults(); c.Timeout != 1 || c.TokenLifetime != 2 || c.Backdate != 3 || c.RootsRefresh != 4 {
		t.Fatalf("WithDefaults replaced set values: %+v", c)
	}
}

package ca_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// New refuses a configuration it cannot serve safely, and names what is wrong.
func TestNewRefusesBadConfig(t *testing.T) {
	dir, _ := catest.FileCA(t)
	file := ca.NamedBackend{Name: "file", Backend: catest.FileBackend(t, dir, nil)}
	good := func() ca.Config {
		return ca.Config{Backends: []ca.NamedBackend{file}, Authenticator: authn.Chain{},
			Policy: ca.Policy{TrustDomain: "cluster.local"}, Logger: catest.DiscardLogger(),
			Registerer: prometheus.NewRegistry()}
	}
	tests := []struct {
		name string
		edit func(*ca.Config)
	}{
		{"no backend", func(c *ca.Config) { c.Backends = nil }},
		{"a backend without a name", func(c *ca.Config) { c.Backends[0].Name = "" }},
		{"a backend without an implementation", func(c *ca.Config) { c.Backends[0].Backend = nil }},
		{"two backends with one name", func(c *ca.Config) { c.Backends = append(c.Backends, file) }},
		{"no authenticator", func(c *ca.Config) { c.Authenticator = nil }},
		{"an invalid trust domain", func(c *ca.Config) { c.Policy.TrustDomain = "Cluster Local" }},
		{"a DNS template without {ns}", func(c *ca.Config) { c.Policy.DNSNameTemplates = []string{"{sa}.svc"} }},
		{"a negative in-flight limit", func(c *ca.Config) { c.Limits.MaxInFlight = -2 }},
		{"a negative per-caller rate", func(c *ca.Config) { c.Limits.PerCallerRate = -0.5 }},
		{"a negative failed-authentication burst", func(c *ca.Config) { c.Limits.FailedAuthnBurst = -1 }},
	}
	if _, err := ca.New(good()); err != nil {
		t.Fatalf("the good configuration: %v", err)
	}
	unlimited := good()
	unlimited.Limits = ca.Limits{MaxInFlight: -1, PerCallerRate: -1, FailedAuthnRate: -1}
	if _, err := ca.New(unlimited); err != nil {
		t.Fatalf("-1, no limit, for every limit: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.edit(&cfg)
			if i, err := ca.New(cfg); err == nil || i != nil {
				t.Fatalf("New = %v, %v; want the configuration refused", i != nil, err)
			}
		})
	}
}

// Without a Logger (and Audit) New falls back to slog's default: issuing and refusing both work.
func TestNewWithoutALogger(t *testing.T) {
	dir, _ := catest.FileCA(t)
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, nil)}},
		Authenticator: j, Policy: ca.Policy{TrustDomain: "cluster.local"}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := i.Issue(context.Background(), request(t, dev)); err != nil {
		t.Fatalf("Issue without a logger: %v", err)
	}
	bad := request(t, dev)
	bad.Credentials.Token = "x"
	if _, err := i.Issue(context.Background(), bad); !errors.Is(err, authn.ErrUnauthenticated) {
		t.Fatalf("a bad token without a logger: %v, want ErrUnauthenticated", err)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/server"
)

// Config is meshca's configuration file (YAML or JSON). Each package owns its part; this composes them.
type Config struct {
	// Issuance is the policy: trust domain, aliases, lifetimes, allowed DNS SANs.
	Issuance ca.Policy `json:"issuance"`
	// Server is the network side: listen addresses, serving certificate names, TLS.
	Server server.Config `json:"server"`
	// Authn lists the trusted token issuers and whether client-certificate renewal is allowed.
	Authn AuthnConfig `json:"authn"`
	// Backends sign, in order of preference (failover on unavailability).
	Backends []BackendConfig `json:"backends"`
	// SignTimeout bounds each backend call. Default 10s.
	SignTimeout time.Duration `json:"signTimeout,omitempty"`
}

// AuthnConfig configures authentication.
type AuthnConfig struct {
	Issuers []IssuerConfig `json:"issuers"`
	// ClientCert allows renewals authenticated by a certificate this CA issued. Default true.
	ClientCert *bool `json:"clientCert,omitempty"`
	// Leeway tolerates clock skew on token times. Default 30s.
	Leeway time.Duration `json:"leeway,omitempty"`
}

// IssuerConfig is one trusted service-account token issuer. Keys come from JWKSFile, JWKSURL, or (neither
// set) the issuer's OIDC discovery document.
type IssuerConfig struct {
	Issuer    string   `json:"issuer"`
	Audiences []string `json:"audiences,omitempty"`
	JWKSFile  string   `json:"jwksFile,omitempty"`
	JWKSURL   string   `json:"jwksURL,omitempty"`
	// CAFile verifies the discovery/JWKS HTTPS server; TokenFile is sent as a bearer token to it.
	CAFile    string `json:"caFile,omitempty"`
	TokenFile string `json:"tokenFile,omitempty"`
	// ClusterID, when set, accepts this issuer's tokens only with that clusterid header.
	ClusterID string `json:"clusterID,omitempty"`
}

// BackendConfig is one signing backend; exactly one of its kinds is set.
type BackendConfig struct {
	Name string       `json:"name"`
	File *file.Config `json:"file,omitempty"`
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Issuance.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Server.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.Authn.Issuers) == 0 && c.Authn.ClientCert != nil && !*c.Authn.ClientCert {
		errs = append(errs, errors.New("authn: configure at least one token issuer or allow client certificates"))
	}
	for n, is := range c.Authn.Issuers {
		if is.Issuer == "" {
			errs = append(errs, fmt.Errorf("authn.issuers[%d]: issuer is required", n))
		}
		if is.JWKSFile != "" && is.JWKSURL != "" {
			errs = append(errs, fmt.Errorf("authn.issuers[%d]: set jwksFile or jwksURL, not both", n))
		}
	}
	if len(c.Backends) == 0 {
		errs = append(errs, errors.New("backends: configure at least one backend"))
	}
	names := map[string]bool{}
	for n, b := range c.Backends {
		if b.Name == "" || names[b.Name] {
			errs = append(errs, fmt.Errorf("backends[%d]: a unique name is required", n))
		}
		names[b.Name] = true
		kinds := 0
		if b.File != nil {
			kinds++
			if err := b.File.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("backends[%d]: %w", n, err))
			}
		}
		if kinds != 1 {
			errs = append(errs, fmt.Errorf("backends[%d] (%s): set exactly one of file, vault, stepca", n, b.Name))
		}
	}
	return errors.Join(errs...)
}

// LoadConfig reads and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := decodeStrict(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// app is meshca wired from a Config.
type app struct {
	issuer  *ca.Issuer
	server  *server.Server
	closers []func() error
}

func (a *app) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i]()
	}
}

// build wires the packages. extraAuthn, when set, is tried before the configured issuers (dev mode).
func build(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry, extraAuthn ...authn.Authenticator) (*app, error) {
	a := &app{}
	var named []ca.NamedBackend
	var crl func(context.Context) ([]byte, error)
	for _, bc := range cfg.Backends {
		var b backends.Backend
		switch {
		case bc.File != nil:
			fc := *bc.File
			fc.Logger, fc.Registerer = log.With("backend", bc.Name), reg
			fb, err := file.New(ctx, fc)
			if err != nil {
				a.Close()
				return nil, err
			}
			a.closers = append(a.closers, fb.Close)
			b = fb
			if crl == nil {
				crl = func(context.Context) ([]byte, error) {
					if l := fb.CRL(); l != nil {
						return l.Raw, nil
					}
					return nil, errors.New("no ca-crl.pem in the cacerts directory")
				}
			}
		}
		if src, ok := b.(backends.CRLSource); ok && crl == nil {
			crl = src.CRL
		}
		named = append(named, ca.NamedBackend{Name: bc.Name, Backend: b})
	}
	chain := authn.Chain(extraAuthn)
	if len(cfg.Authn.Issuers) > 0 {
		var issuers []authn.Issuer
		for _, ic := range cfg.Authn.Issuers {
			var keys authn.KeySet
			var err error
			if ic.JWKSFile != "" {
				keys, err = authn.LoadJWKS(ic.JWKSFile)
			} else {
				keys, err = authn.NewRemoteKeys(authn.RemoteKeysConfig{Issuer: ic.Issuer, JWKSURL: ic.JWKSURL,
					CAFile: ic.CAFile, TokenFile: ic.TokenFile, Logger: log})
			}
			if err != nil {
				a.Close()
				return nil, err
			}
			issuers = append(issuers, authn.Issuer{Issuer: ic.Issuer, Audiences: ic.Audiences, Keys: keys, ClusterID: ic.ClusterID})
		}
		j, err := authn.NewJWT(issuers, authn.JWTOptions{Leeway: cfg.Authn.Leeway})
		if err != nil {
			a.Close()
			return nil, err
		}
		chain = append(chain, j)
	}
	issuer, err := ca.New(ca.Config{Backends: named, Authenticator: &chain, Policy: cfg.Issuance,
		SignTimeout: cfg.SignTimeout, Logger: log, Audit: log.With("log", "audit"), Registerer: reg})
	if err != nil {
		a.Close()
		return nil, err
	}
	if cfg.Authn.ClientCert == nil || *cfg.Authn.ClientCert {
		chain = append(chain, &authn.ClientCert{Roots: issuer.Roots, TrustDomains: issuer.TrustDomains()})
	}
	scfg := cfg.Server
	scfg.Logger, scfg.Gatherer, scfg.CRL = log, reg, crl
	srv, err := server.New(issuer, scfg)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.issuer, a.server = issuer, srv
	return a, nil
}

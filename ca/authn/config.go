package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/meshca/meshca/internal/compliance"
)

// Config is the authn section of meshca's configuration file: the token issuers verified locally and whether
// client-certificate renewal is allowed. Authentication through the API server is configured in kube.Config.
type Config struct {
	// TokenIssuers are the trusted service-account token issuers (key "issuers").
	TokenIssuers []TokenIssuerConfig `json:"issuers"`
	// ClientCert allows renewals authenticated by a certificate this CA issued. Default true.
	ClientCert *bool `json:"clientCert,omitempty"`
	// Leeway tolerates clock skew on token times. Default 30s, at most 5m.
	Leeway time.Duration `json:"leeway,omitempty"`
}

// TokenIssuerConfig is one trusted service-account token issuer. Keys come from JWKSFile, JWKSURL, or (neither
// set) the issuer's OIDC discovery document.
type TokenIssuerConfig struct {
	// Issuer is the exact "iss" claim of the issuer's tokens.
	Issuer string `json:"issuer"`
	// Audiences are accepted "aud" values. Default [DefaultAudience].
	Audiences []string `json:"audiences,omitempty"`
	JWKSFile  string   `json:"jwksFile,omitempty"`
	JWKSURL   string   `json:"jwksURL,omitempty"`
	// CAFile verifies the discovery/JWKS HTTPS server; TokenFile is sent as a bearer token to it.
	CAFile    string `json:"caFile,omitempty"`
	TokenFile string `json:"tokenFile,omitempty"`
	// ClusterID, when set, accepts this issuer's tokens only with that clusterid header.
	ClusterID string `json:"clusterID,omitempty"`
}

// Validate reports every problem with c at once. It has no side effects: it reads no file and fetches
// nothing.
func (c *Config) Validate() error {
	var errs []error
	if len(c.TokenIssuers) == 0 && !c.ClientCertAllowed() {
		errs = append(errs, errors.New("authn: configure at least one token issuer or allow client certificates"))
	}
	for n, is := range c.TokenIssuers {
		if is.Issuer == "" {
			errs = append(errs, fmt.Errorf("authn.issuers[%d]: issuer is required", n))
		}
		if is.JWKSFile != "" && is.JWKSURL != "" {
			errs = append(errs, fmt.Errorf("authn.issuers[%d]: set jwksFile or jwksURL, not both", n))
		}
	}
	if c.Leeway < 0 || c.Leeway > maxLeeway {
		errs = append(errs, fmt.Errorf("authn.leeway: %s must be between 0 and 5m", c.Leeway))
	}
	return errors.Join(errs...)
}

// ClientCertAllowed reports whether renewals may authenticate with a certificate this CA issued (the default).
func (c *Config) ClientCertAllowed() bool { return c.ClientCert == nil || *c.ClientCert }

// Deps are what New needs beyond a Config: other packages' authenticators and the CA's roots.
type Deps struct {
	// First are tried before the token issuers, e.g. dev mode's token issuer.
	First []Authenticator
	// Then are tried after the token issuers and before client certificates, e.g. Kubernetes TokenReview
	// (kube.Auth).
	Then []Authenticator
	// Roots returns the CA's current trust anchors and TrustDomains are the mesh's trust domain and its
	// aliases; client certificates are checked against both, so Roots is required when they are allowed.
	// Roots is first called when a caller presents a certificate, so it may reach a CA built after New.
	Roots        func(context.Context) ([]*x509.Certificate, error)
	TrustDomains []string
	// IssuingCAs returns the CAs meshca signs with and MaxLifetime is the longest lifetime it issues: a
	// renewal certificate must come from one of those CAs and live no longer (ClientCert). Both are required
	// when client certificates are allowed.
	IssuingCAs  func(context.Context) ([]*x509.Certificate, error)
	MaxLifetime time.Duration
	// Logger receives the remote key sets' logs. Default slog.Default().
	Logger *slog.Logger
	// TLSPolicy is the COMPLIANCE_POLICY for fetching remote key sets (JWKS, OIDC discovery).
	TLSPolicy compliance.Policy
}

// New returns the authenticators cfg describes, in the order the Chain tries them: deps.First, the token
// issuers, deps.Then, and client certificates. A refusal is final, so configure one way of checking each
// token issuer. New reads JWKS files; remote key sets are fetched when first used. A valid cfg always yields
// at least one authenticator: a token issuer or client certificates.
func New(cfg Config, deps Deps) (Chain, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	chain := append(Chain{}, deps.First...)
	if len(cfg.TokenIssuers) > 0 {
		issuers, err := tokenIssuers(cfg.TokenIssuers, deps.Logger, deps.TLSPolicy)
		if err != nil {
			return nil, err
		}
		j, err := NewJWT(issuers, JWTOptions{Leeway: cfg.Leeway})
		if err != nil {
			return nil, err
		}
		chain = append(chain, j)
	}
	chain = append(chain, deps.Then...)
	if cfg.ClientCertAllowed() {
		if deps.Roots == nil || deps.IssuingCAs == nil || deps.MaxLifetime <= 0 {
			return nil, errors.New("authn: client certificates need the CA's roots, issuing CAs and maximum " +
				"lifetime (Deps.Roots, Deps.IssuingCAs, Deps.MaxLifetime)")
		}
		chain = append(chain, &ClientCert{Roots: deps.Roots, IssuingCAs: deps.IssuingCAs,
			MaxLifetime: deps.MaxLifetime, TrustDomains: deps.TrustDomains})
	}
	return chain, nil
}

// tokenIssuers loads or sets up the key set of every configured issuer.
func tokenIssuers(cfgs []TokenIssuerConfig, log *slog.Logger, policy compliance.Policy) ([]TokenIssuer, error) {
	var issuers []TokenIssuer
	for _, ic := range cfgs {
		var keys KeySet
		var err error
		if ic.JWKSFile != "" {
			keys, err = LoadJWKS(ic.JWKSFile)
		} else {
			keys, err = NewRemoteKeys(RemoteKeysConfig{Issuer: ic.Issuer, JWKSURL: ic.JWKSURL,
				CAFile: ic.CAFile, TokenFile: ic.TokenFile, Logger: log, TLSPolicy: policy})
		}
		if err != nil {
			return nil, err
		}
		issuers = append(issuers, TokenIssuer{Issuer: ic.Issuer, Audiences: ic.Audiences, Keys: keys,
			ClusterID: ic.ClusterID})
	}
	return issuers, nil
}

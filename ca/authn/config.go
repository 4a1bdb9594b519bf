package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	// MaxTokenLifetime refuses tokens valid longer than this in all (exp - iat). Default 24h.
	MaxTokenLifetime time.Duration `json:"maxTokenLifetime,omitempty"`
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
	// ClusterID is the cluster this issuer's tokens come from: they are accepted only with that clusterid
	// header (or none, for the local cluster), and the caller's cluster is this one. Default the local
	// cluster (kubernetes.clusterID, else DefaultClusterID); required when several issuers are configured.
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
		if is.ClusterID == "" && len(c.TokenIssuers) > 1 {
			errs = append(errs, fmt.Errorf("authn.issuers[%d].clusterID: required when several issuers are "+
				"configured, so that no remote cluster's tokens count as the local cluster's (write the local "+
				"cluster's ID, e.g. %s, for the local issuers)", n, DefaultClusterID))
		}
	}
	if c.MaxTokenLifetime < 0 {
		errs = append(errs, fmt.Errorf("authn.maxTokenLifetime: %s must not be negative", c.MaxTokenLifetime))
	}
	if c.Leeway < 0 || c.Leeway > maxLeeway {
		errs = append(errs, fmt.Errorf("authn.leeway: %s must be between 0 and 5m", c.Leeway))
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every unset setting at its default: client certificates allowed, the default
// leeway, each issuer's audience DefaultAudience (for meshca config print --defaults).
func (c Config) WithDefaults() Config {
	allowed := c.ClientCertAllowed()
	c.ClientCert = &allowed
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	issuers := make([]TokenIssuerConfig, len(c.TokenIssuers))
	for n, is := range c.TokenIssuers {
		if len(is.Audiences) == 0 {
			is.Audiences = []string{DefaultAudience}
		}
		issuers[n] = is
	}
	if c.TokenIssuers != nil {
		c.TokenIssuers = issuers
	}
	return c
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
	// Combine says how the token issuers and Then share tokens; required when both are configured
	// (kubernetes.tokenReview.withIssuers).
	Combine Combine
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
	// Revocation, when set, checks every renewal certificate's verified chain (ClientCert.Revocation).
	Revocation func(ctx context.Context, chain []*x509.Certificate) error
	// LocalClusterID is meshca's own cluster (kubernetes.clusterID), the cluster of token issuers that name
	// none. Default DefaultClusterID.
	LocalClusterID string
	// Logger receives the remote key sets' logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the remote key sets' metrics (NewKeysMetrics); nil leaves them unregistered.
	Registerer prometheus.Registerer
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
	if err := deps.Combine.Validate(); err != nil {
		return nil, fmt.Errorf("authn: kubernetes.tokenReview.withIssuers: %w", err)
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	chain := append(Chain{}, deps.First...)
	if len(cfg.TokenIssuers) > 0 {
		m, err := NewKeysMetrics(deps.Registerer)
		if err != nil {
			return nil, err
		}
		issuers, err := tokenIssuers(cfg.TokenIssuers, m, deps.Logger, deps.TLSPolicy)
		if err != nil {
			return nil, err
		}
		j, err := NewJWT(issuers, JWTOptions{Leeway: cfg.Leeway, MaxTokenLifetime: cfg.MaxTokenLifetime,
			LocalClusterID: deps.LocalClusterID, PassUnknownIssuers: len(deps.Then) > 0})
		if err != nil {
			return nil, err
		}
		chain = append(chain, j)
	}
	switch {
	case len(deps.Then) == 0 || len(cfg.TokenIssuers) == 0 || deps.Combine == CombineOtherIssuers:
		chain = append(chain, deps.Then...)
	case deps.Combine == CombineConfirm:
		chain[len(chain)-1] = &confirmed{local: chain[len(chain)-1], review: Chain(deps.Then)}
	default:
		return nil, fmt.Errorf("authn: both authn.issuers and kubernetes.tokenReview are configured: set "+
			"kubernetes.tokenReview.withIssuers to %q (the issuers' tokens are verified locally only, others "+
			"reviewed) or %q (the issuers' tokens are also confirmed by a TokenReview)", CombineOtherIssuers,
			CombineConfirm)
	}
	if cfg.ClientCertAllowed() {
		if deps.Roots == nil || deps.IssuingCAs == nil || deps.MaxLifetime <= 0 {
			return nil, errors.New("authn: client certificates need the CA's roots, issuing CAs and maximum " +
				"lifetime (Deps.Roots, Deps.IssuingCAs, Deps.MaxLifetime)")
		}
		chain = append(chain, &ClientCert{Roots: deps.Roots, IssuingCAs: deps.IssuingCAs,
			MaxLifetime: deps.MaxLifetime, TrustDomains: deps.TrustDomains, Revocation: deps.Revocation})
	}
	return chain, nil
}

// tokenIssuers loads or sets up the key set of every configured issuer.
func tokenIssuers(cfgs []TokenIssuerConfig, m *KeysMetrics, log *slog.Logger, policy compliance.Policy) (
	[]TokenIssuer, error) {
	var issuers []TokenIssuer
	for _, ic := range cfgs {
		var keys KeySet
		var err error
		if ic.JWKSFile != "" {
			keys, err = LoadJWKS(ic.JWKSFile)
		} else {
			keys, err = NewRemoteKeys(RemoteKeysConfig{Issuer: ic.Issuer, JWKSURL: ic.JWKSURL,
				CAFile: ic.CAFile, TokenFile: ic.TokenFile, Metrics: m, Logger: log, TLSPolicy: policy})
		}
		if err != nil {
			return nil, err
		}
		issuers = append(issuers, TokenIssuer{Issuer: ic.Issuer, Audiences: ic.Audiences, Keys: keys,
			ClusterID: ic.ClusterID})
	}
	return issuers, nil
}

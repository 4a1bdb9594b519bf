package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/backends/stepca"
	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/nodeauth"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/trustbundle"
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
	// Kubernetes connects meshca to its cluster: TokenReview, remote clusters, ztunnel impersonation.
	Kubernetes *KubernetesConfig `json:"kubernetes,omitempty"`
	// TrustBundle publishes the roots as a ClusterTrustBundle and istio-ca-root-cert ConfigMaps.
	TrustBundle *trustbundle.Config `json:"trustBundle,omitempty"`
}

// KubernetesConfig is meshca's cluster connection and the authentication that uses it.
type KubernetesConfig struct {
	// Kubeconfig is a kubeconfig file; empty means the in-cluster configuration.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// ClusterID is this cluster's ID as istio-agent sends it (clusterid header). Default "Kubernetes".
	ClusterID string `json:"clusterID,omitempty"`
	// TokenReview, when set, authenticates service-account tokens with the API server's TokenReview.
	TokenReview *TokenReviewConfig `json:"tokenReview,omitempty"`
	// RemoteSecretsNamespace, when set, watches istiod-style remote secrets (label istio/multiCluster=true)
	// there and reviews tokens of other clusters with their API servers. Needs tokenReview.
	RemoteSecretsNamespace string `json:"remoteSecretsNamespace,omitempty"`
	// TrustedNodeAccounts are the "namespace/serviceaccount" node agents (ztunnel) that may request
	// certificates for pods on their own node (Istio's CA_TRUSTED_NODE_ACCOUNTS).
	TrustedNodeAccounts []string `json:"trustedNodeAccounts,omitempty"`
}

// TokenReviewConfig tunes TokenReview authentication.
type TokenReviewConfig struct {
	// Audiences a token must be bound to. Default ["istio-ca"].
	Audiences []string `json:"audiences,omitempty"`
	// CacheTTL bounds how long a successful review is reused (never past the token's expiry). Default 1m.
	CacheTTL time.Duration `json:"cacheTTL,omitempty"`
	// NegativeTTL is how long a refusal is remembered. Default 5s; -1ns disables.
	NegativeTTL time.Duration `json:"negativeTTL,omitempty"`
	// CacheSize bounds the cache. Default 4096.
	CacheSize int `json:"cacheSize,omitempty"`
	// Timeout bounds one review. Default 5s.
	Timeout time.Duration `json:"timeout,omitempty"`
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
	Name   string         `json:"name"`
	File   *file.Config   `json:"file,omitempty"`
	Vault  *vault.Config  `json:"vault,omitempty"`
	StepCA *stepca.Config `json:"stepca,omitempty"`
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
		if b.Vault != nil {
			kinds++
			if err := b.Vault.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("backends[%d]: %w", n, err))
			}
		}
		if b.StepCA != nil {
			kinds++
			if err := b.StepCA.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("backends[%d]: %w", n, err))
			}
		}
		if kinds != 1 {
			errs = append(errs, fmt.Errorf("backends[%d] (%s): set exactly one of file, vault, stepca", n, b.Name))
		}
	}
	if k := c.Kubernetes; k != nil {
		if k.RemoteSecretsNamespace != "" && k.TokenReview == nil {
			errs = append(errs, errors.New("kubernetes: remoteSecretsNamespace needs tokenReview"))
		}
		for _, a := range k.TrustedNodeAccounts {
			if ns, sa, ok := strings.Cut(a, "/"); !ok || ns == "" || sa == "" {
				errs = append(errs, fmt.Errorf("kubernetes.trustedNodeAccounts: %q is not namespace/serviceaccount", a))
			}
		}
	}
	if c.TrustBundle != nil {
		if err := c.TrustBundle.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// needsKube reports whether any configured part talks to the API server.
func (c *Config) needsKube() bool {
	if c.Kubernetes != nil || c.TrustBundle != nil {
		return true
	}
	for _, b := range c.Backends {
		if b.File != nil && b.File.Secret != "" {
			return true
		}
	}
	return false
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
	run     []func(context.Context) error // background loops that end with the server
	closers []func() error
}

func (a *app) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i]()
	}
}

// build wires the packages. extraAuthn, when set, is tried before the configured issuers (dev mode).
func build(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry, extraAuthn ...authn.Authenticator) (a *app, err error) {
	a = &app{}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	var restCfg *rest.Config
	var client kubernetes.Interface
	if cfg.needsKube() {
		kubeconfig := ""
		if cfg.Kubernetes != nil {
			kubeconfig = cfg.Kubernetes.Kubeconfig
		}
		if restCfg, err = authn.LoadRESTConfig(kubeconfig); err != nil {
			return nil, err
		}
		if client, err = kubernetes.NewForConfig(restCfg); err != nil {
			return nil, fmt.Errorf("kubernetes client: %w", err)
		}
	}

	named, crl, err := a.backends(ctx, cfg, log, reg, client)
	if err != nil {
		return nil, err
	}

	// Authenticators, in order: dev issuer, token issuers (JWKS), TokenReview, then client certificates.
	// A refusal is final (authn.Chain), so configure one way of checking each token issuer.
	chain := authn.Chain(extraAuthn)
	if len(cfg.Authn.Issuers) > 0 {
		j, err := jwtAuthenticator(cfg.Authn, log)
		if err != nil {
			return nil, err
		}
		chain = append(chain, j)
	}
	var imp ca.Impersonator
	if k := cfg.Kubernetes; k != nil {
		clusterID := k.ClusterID
		if clusterID == "" {
			clusterID = "Kubernetes"
		}
		if tr := k.TokenReview; tr != nil {
			m, err := authn.NewTokenReviewMetrics(reg)
			if err != nil {
				return nil, err
			}
			rc := authn.TokenReviewConfig{Client: client, Audiences: tr.Audiences, ClusterID: clusterID,
				CacheTTL: tr.CacheTTL, NegativeTTL: tr.NegativeTTL, CacheSize: tr.CacheSize, Timeout: tr.Timeout,
				Metrics: m, Logger: log.With("component", "tokenreview")}
			review, err := authn.NewTokenReview(rc)
			if err != nil {
				return nil, err
			}
			var ka authn.Authenticator = review
			if k.RemoteSecretsNamespace != "" {
				rc.Client, rc.ClusterID, rc.Logger = nil, "", nil
				mc, err := authn.NewMultiCluster(authn.MultiClusterConfig{Client: client, Namespace: k.RemoteSecretsNamespace,
					LocalClusterID: clusterID, Local: review, Review: rc, Logger: log.With("component", "multicluster")})
				if err != nil {
					return nil, err
				}
				if err := mc.Start(ctx); err != nil {
					return nil, err
				}
				ka = mc
			}
			chain = append(chain, ka)
		}
		if len(k.TrustedNodeAccounts) > 0 {
			na, err := nodeauth.New(nodeauth.Config{Client: client, TrustedAccounts: k.TrustedNodeAccounts, ClusterID: clusterID,
				Logger: log.With("component", "nodeauth")})
			if err != nil {
				return nil, err
			}
			if err := na.Start(ctx); err != nil {
				return nil, err
			}
			imp = na
		}
	}
	issuer, err := ca.New(ca.Config{Backends: named, Authenticator: &chain, Impersonator: imp, Policy: cfg.Issuance,
		SignTimeout: cfg.SignTimeout, Logger: log, Audit: log.With("log", "audit"), Registerer: reg})
	if err != nil {
		return nil, err
	}
	// Client certificates are checked against the issuer's roots, so this authenticator comes after the
	// issuer; nothing authenticates before the server starts, so appending here is safe.
	if cfg.Authn.ClientCert == nil || *cfg.Authn.ClientCert {
		chain = append(chain, &authn.ClientCert{Roots: issuer.Roots, TrustDomains: issuer.TrustDomains()})
	}
	if len(chain) == 0 {
		return nil, errors.New("authn: nothing can authenticate callers: configure authn.issuers, kubernetes.tokenReview or allow clientCert")
	}
	if tb := cfg.TrustBundle; tb != nil {
		tc := *tb
		tc.Kube, tc.Source, tc.Logger, tc.Registerer = restCfg, issuer, log.With("component", "trustbundle"), reg
		pub, err := trustbundle.New(tc)
		if err != nil {
			return nil, err
		}
		a.run = append(a.run, pub.Run)
	}
	scfg := cfg.Server
	scfg.Logger, scfg.Gatherer, scfg.CRL = log, reg, crl
	srv, err := server.New(issuer, scfg)
	if err != nil {
		return nil, err
	}
	a.issuer, a.server = issuer, srv
	return a, nil
}

// backends starts the configured backends in order and picks the CRL to publish: the first backend's own.
func (a *app) backends(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry, client kubernetes.Interface) ([]ca.NamedBackend, func(context.Context) ([]byte, error), error) {
	var named []ca.NamedBackend
	var crl func(context.Context) ([]byte, error)
	for _, bc := range cfg.Backends {
		blog := log.With("backend", bc.Name)
		var b backends.Backend
		switch {
		case bc.File != nil:
			fc := *bc.File
			fc.Logger, fc.Registerer = blog, reg
			if fc.Secret != "" {
				fc.Kube = client
			}
			fb, err := file.New(ctx, fc)
			if err != nil {
				return nil, nil, fmt.Errorf("backend %s: %w", bc.Name, err)
			}
			a.closers = append(a.closers, fb.Close)
			b = fb
			if crl == nil {
				crl = func(context.Context) ([]byte, error) {
					if l := fb.CRL(); l != nil {
						return l.Raw, nil
					}
					return nil, errors.New("no ca-crl.pem in the cacerts")
				}
			}
		case bc.Vault != nil:
			vc := *bc.Vault
			vc.Logger = blog
			vb, err := vault.New(ctx, vc)
			if err != nil {
				return nil, nil, fmt.Errorf("backend %s: %w", bc.Name, err)
			}
			a.closers = append(a.closers, vb.Close)
			b = vb
		case bc.StepCA != nil:
			sc := *bc.StepCA
			sc.Logger = blog
			sb, err := stepca.New(ctx, sc)
			if err != nil {
				return nil, nil, fmt.Errorf("backend %s: %w", bc.Name, err)
			}
			b = sb
		}
		if src, ok := b.(backends.CRLSource); ok && crl == nil {
			crl = src.CRL
		}
		named = append(named, ca.NamedBackend{Name: bc.Name, Backend: b})
	}
	return named, crl, nil
}

func jwtAuthenticator(c AuthnConfig, log *slog.Logger) (*authn.JWT, error) {
	var issuers []authn.Issuer
	for _, ic := range c.Issuers {
		var keys authn.KeySet
		var err error
		if ic.JWKSFile != "" {
			keys, err = authn.LoadJWKS(ic.JWKSFile)
		} else {
			keys, err = authn.NewRemoteKeys(authn.RemoteKeysConfig{Issuer: ic.Issuer, JWKSURL: ic.JWKSURL,
				CAFile: ic.CAFile, TokenFile: ic.TokenFile, Logger: log})
		}
		if err != nil {
			return nil, err
		}
		issuers = append(issuers, authn.Issuer{Issuer: ic.Issuer, Audiences: ic.Audiences, Keys: keys, ClusterID: ic.ClusterID})
	}
	return authn.NewJWT(issuers, authn.JWTOptions{Leeway: c.Leeway})
}

package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/compliance"
)

// Config is the kubernetes section of meshca's configuration file: meshca's cluster connection and the
// authentication that asks that cluster's API server.
type Config struct {
	// Kubeconfig is a kubeconfig file; empty means the in-cluster configuration (see LoadRESTConfig).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// ClusterID is this cluster's ID as istio-agent sends it (clusterid header). Default authn.DefaultClusterID.
	ClusterID string `json:"clusterID,omitempty"`
	// TokenReview, when set, authenticates service-account tokens with the API server's TokenReview.
	TokenReview *TokenReviewConfig `json:"tokenReview,omitempty"`
	// RemoteSecretsNamespace, when set, watches istiod-style remote secrets (label istio/multiCluster=true)
	// there and reviews tokens of other clusters with their API servers. Needs TokenReview.
	RemoteSecretsNamespace string `json:"remoteSecretsNamespace,omitempty"`
	// TrustedNodeAccounts are the "namespace/serviceaccount" node agents (ztunnel) that may request
	// certificates for pods on their own node (Istio's CA_TRUSTED_NODE_ACCOUNTS).
	TrustedNodeAccounts []string `json:"trustedNodeAccounts,omitempty"`
	// QPS and Burst bound meshca's requests to each API server, TokenReviews included (client-side, per
	// cluster). Defaults DefaultQPS and DefaultBurst; client-go's own 5 and 10 would throttle TokenReviews.
	QPS   float32 `json:"qps,omitempty"`
	Burst int     `json:"burst,omitempty"`
}

// Client-side rate limits to an API server when the configuration sets none.
const (
	DefaultQPS   = 50
	DefaultBurst = 100
)

// Limit sets rc's client-side rate limits to c's (or the defaults), for every client meshca builds on rc.
func (c *Config) Limit(rc *rest.Config) {
	rc.QPS, rc.Burst = c.QPS, c.Burst
	if rc.QPS == 0 {
		rc.QPS = DefaultQPS
	}
	if rc.Burst == 0 {
		rc.Burst = DefaultBurst
	}
}

// Validate reports every problem with c at once. It has no side effects: it reads no kubeconfig and
// contacts no API server.
func (c *Config) Validate() error {
	var errs []error
	if c.RemoteSecretsNamespace != "" && c.TokenReview == nil {
		errs = append(errs, errors.New("kubernetes: remoteSecretsNamespace needs tokenReview"))
	}
	if c.TokenReview != nil {
		errs = append(errs, c.TokenReview.validateSettings("kubernetes.tokenReview."))
	}
	if c.QPS < 0 || c.Burst < 0 {
		errs = append(errs, errors.New("kubernetes.qps and kubernetes.burst must not be negative"))
	}
	for _, a := range c.TrustedNodeAccounts {
		if _, err := parseAccount(a); err != nil {
			errs = append(errs, fmt.Errorf("kubernetes.trustedNodeAccounts: %q is not namespace/serviceaccount", a))
		}
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every unset setting at the default New applies, TokenReview's included (for
// meshca config print --defaults).
func (c Config) WithDefaults() Config {
	if c.ClusterID == "" {
		c.ClusterID = authn.DefaultClusterID
	}
	if c.TokenReview != nil {
		tr := *c.TokenReview
		tr.setDefaults()
		c.TokenReview = &tr
	}
	return c
}

// Deps are what New needs beyond a Config.
type Deps struct {
	// Client reaches meshca's own cluster, e.g. through LoadRESTConfig(cfg.Kubeconfig).
	Client kubernetes.Interface
	// Registerer receives the TokenReview metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// MaxTokenLifetime is authn.maxTokenLifetime: TokenReview refuses longer-lived tokens before any review.
	// Default authn.DefaultMaxTokenLifetime.
	MaxTokenLifetime time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// TLSPolicy is the COMPLIANCE_POLICY for the remote clusters' API-server clients (remote secrets); the
	// caller applies it to Client's own configuration (WithPolicy).
	TLSPolicy compliance.Policy
}

// Auth is the authentication a Config describes.
type Auth struct {
	// Authenticators check service-account tokens with the API server: TokenReview, or MultiCluster when
	// remote secrets are watched. Empty without tokenReview.
	Authenticators []authn.Authenticator
	// Impersonator lets the trusted node agents act for the pods on their node; nil without
	// trustedNodeAccounts.
	Impersonator authn.Impersonator
	// Combine is tokenReview.withIssuers, for authn.Deps.Combine.
	Combine authn.Combine
}

// New builds what cfg describes and starts its informers (remote secrets, pods), which run until ctx ends;
// it returns once they have listed what they watch.
func New(ctx context.Context, cfg Config, deps Deps) (*Auth, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Client == nil {
		return nil, errors.New("kube: a Kubernetes client is required (Deps.Client)")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	clusterID := cfg.ClusterID
	if clusterID == "" {
		clusterID = authn.DefaultClusterID
	}
	a := &Auth{}
	if cfg.TokenReview != nil {
		ta, err := startTokenReview(ctx, cfg, clusterID, deps)
		if err != nil {
			return nil, err
		}
		a.Authenticators = append(a.Authenticators, ta)
		a.Combine = cfg.TokenReview.WithIssuers
	}
	if len(cfg.TrustedNodeAccounts) > 0 {
		na, err := NewNodeAgents(NodeAgentsConfig{Client: deps.Client, TrustedAccounts: cfg.TrustedNodeAccounts,
			ClusterID: clusterID, Logger: deps.Logger.With("component", "nodeauth")})
		if err != nil {
			return nil, err
		}
		if err := na.Start(ctx); err != nil {
			return nil, err
		}
		a.Impersonator = na
	}
	return a, nil
}

// startTokenReview returns the local cluster's TokenReview, or a started MultiCluster around it when remote
// secrets are watched.
func startTokenReview(ctx context.Context, cfg Config, clusterID string, deps Deps) (authn.Authenticator, error) {
	m, err := NewTokenReviewMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	rc := *cfg.TokenReview
	rc.Client, rc.ClusterID, rc.Metrics, rc.MaxTokenLifetime = deps.Client, clusterID, m, deps.MaxTokenLifetime
	rc.Logger = deps.Logger.With("component", "tokenreview")
	review, err := NewTokenReview(rc)
	if err != nil {
		return nil, err
	}
	if cfg.RemoteSecretsNamespace == "" {
		return review, nil
	}
	// Remote clusters' reviews share the tunables and metrics; client and cluster ID are theirs.
	rc.Client, rc.ClusterID, rc.Logger = nil, "", nil
	mc, err := NewMultiCluster(MultiClusterConfig{Client: deps.Client, Namespace: cfg.RemoteSecretsNamespace,
		LocalClusterID: clusterID, Local: review, Review: rc, Limit: cfg.Limit, TLSPolicy: deps.TLSPolicy,
		Logger: deps.Logger.With("component", "multicluster")})
	if err != nil {
		return nil, err
	}
	if err := mc.Start(ctx); err != nil {
		return nil, err
	}
	return mc, nil
}

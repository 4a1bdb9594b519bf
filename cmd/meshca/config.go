package main

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/backends/stepca"
	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/kubesigner"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/compliance"
	"github.com/meshca/meshca/rotation"
	"github.com/meshca/meshca/trustbundle"
)

// Config is meshca's configuration file (YAML or JSON). Each package owns its part; this composes them.
type Config struct {
	// Issuance is the policy: trust domain, aliases, lifetimes, allowed DNS SANs.
	Issuance ca.Policy `json:"issuance"`
	// Policy holds the per-namespace rules over Issuance, first match wins (docs/policy.md).
	Policy policy.Config `json:"policy,omitempty"`
	// PolicyFile, instead of Policy, is a file holding the policy: section, re-read when it changes.
	PolicyFile string `json:"policyFile,omitempty"`
	// Server is the network side: listen addresses, serving certificate names, TLS.
	Server server.Config `json:"server"`
	// Authn lists the trusted token issuers and whether client-certificate renewal is allowed.
	Authn authn.Config `json:"authn"`
	// Backends sign, in order of preference (failover on unavailability).
	Backends []BackendConfig `json:"backends"`
	// SignTimeout bounds each backend call. Default 10s.
	SignTimeout time.Duration `json:"signTimeout,omitempty"`
	// Kubernetes connects meshca to its cluster: TokenReview, remote clusters, ztunnel impersonation.
	Kubernetes *kube.Config `json:"kubernetes,omitempty"`
	// TrustBundle publishes the roots as a ClusterTrustBundle and istio-ca-root-cert ConfigMaps.
	TrustBundle *trustbundle.Config `json:"trustBundle,omitempty"`
	// K8sSigner makes meshca the Kubernetes CSR signer behind istiod as registration authority.
	K8sSigner *kubesigner.Config `json:"k8sSigner,omitempty"`
	// Expiry tunes the per-identity expiry tracker (meshca_identity_* metrics, the stuck-agent signal; always
	// on) and the expiry scanner (scan:, expiry.go). The zero value is their defaults.
	Expiry ExpiryConfig `json:"expiry,omitempty"`
	// CRL turns revocation on: the revocation state, CRLs for every CA of the chain, istio-ca-crl ConfigMaps,
	// the admin API (cmd/meshca/crl.go, docs/revocation.md).
	CRL *CRLConfig `json:"crl,omitempty"`
	// Limits protect meshca from floods (in-flight cap, per-caller and per-source failure rates); the zero
	// value is their defaults.
	Limits ca.Limits `json:"limits,omitempty"`
	// CompliancePolicy is Istio's COMPLIANCE_POLICY for every TLS connection meshca serves or makes: pqc,
	// fips-140-2, fips-140-3, or empty for Go's defaults. The COMPLIANCE_POLICY environment variable sets it
	// too; when both are set they must agree.
	CompliancePolicy string `json:"compliancePolicy,omitempty"`
	// Rotation, when set, lets `meshca rotation` drive a root rotation through a state file
	// (docs/root-rotation.md).
	Rotation *rotation.Config `json:"rotation,omitempty"`
	// AdminTokenFile is where serve writes, at each start, the token the loopback admin APIs (crl.admin.addr,
	// rotation.adminAddr) require of every caller; readable by meshca's user only (default
	// /var/run/meshca/admin-token, dev mode DIR/admin-token).
	AdminTokenFile string `json:"adminTokenFile,omitempty"`
	// AllowShortTTLs permits lifetimes below MinLifetime. For tests only; serve warns when it is set.
	AllowShortTTLs bool `json:"allowShortTTLs,omitempty"`
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
		errs = append(errs, inSection(err, "policy", "issuance"))
	}
	if err := c.validatePolicy(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Server.Validate(); err != nil {
		errs = append(errs, inSection(err, "server", "server"))
	}
	if err := c.Authn.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Expiry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.CRL != nil {
		errs = append(errs, c.CRL.Validate())
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := compliance.Parse(c.CompliancePolicy); err != nil {
		errs = append(errs, fmt.Errorf("compliancePolicy: %w", err))
	}
	if c.Rotation != nil {
		errs = append(errs, c.Rotation.Validate())
	}
	errs = append(errs, c.compositeProblems())
	errs = append(errs, c.validateBackends()...)
	if c.Kubernetes != nil {
		if err := c.Kubernetes.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TrustBundle != nil {
		errs = append(errs, inSection(c.TrustBundle.Validate(), "trustbundle", "trustBundle"))
	}
	errs = append(errs, c.validateK8sSigner())
	return errors.Join(errs...)
}

// validateBackends reports every problem of the backends section: names, kinds and each backend's own checks.
func (c *Config) validateBackends() []error {
	var errs []error
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
	return errs
}

// needsKube reports whether any configured part talks to the API server.
func (c *Config) needsKube() bool {
	if c.Kubernetes != nil || c.TrustBundle != nil || c.CRL.needsKube() || c.K8sSigner != nil ||
		(c.Expiry.Scan.Kubernetes != nil && !c.Expiry.Scan.Disabled) || c.Rotation.InCluster() {
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
	c, err := loadBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// loadBytes decodes and checks a configuration: everything serve checks before it binds or connects anything.
func loadBytes(b []byte) (*Config, error) {
	var c Config
	if err := decodeStrict(b, &c); err != nil {
		return nil, err
	}
	if err := c.loadPolicyFile(); err != nil {
		return nil, err
	}
	if err := errors.Join(c.Validate(), c.checkUsable()); err != nil {
		return nil, err
	}
	return &c, nil
}

// app is meshca wired from a Config.
type app struct {
	issuer  *ca.Issuer
	server  *server.Server
	run     []func(context.Context) error // background loops that end with the server
	closers []func() error
	pages   map[string]http.Handler // read-only pages of the HTTP port (the rotation status)
	// adminToken is the loopback admin APIs' token once written (loopbackAdmin).
	adminToken string
	// caSwitch joins the file backends' nextDir and the rotation controller (rotationswitch.go).
	caSwitch caSwitch
}

func (a *app) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i]()
	}
}

// build wires the packages, one configuration section a step (build.go). extraAuthn, when set, is tried before
// the configured token issuers (dev mode).
func build(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry,
	extraAuthn ...authn.Authenticator) (_ *app, err error) {
	// a is not the named result: every error path returns nil, and the deferred Close must still see what was
	// started (a nil result here once turned each start-up failure into a nil dereference hiding the cause).
	a := &app{}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	w := &wiring{a: a, cfg: cfg, log: log, reg: reg, extraAuthn: extraAuthn}
	for _, step := range []func(context.Context) error{
		w.useCompliancePolicy, // compliancePolicy
		w.connectKubernetes,   // kubernetes, when any part needs the API server
		w.startBackends,       // backends
		w.startCRL,            // crl
		w.authenticate,        // authn, kubernetes
		w.issue,               // issuance, policy, limits, expiry (tracker), rotation
		w.watchPolicyFile,     // policyFile
		w.publishTrustBundle,  // trustBundle
		w.signKubernetesCSRs,  // k8sSigner
		w.serve,               // server, expiry.scan
	} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// backends starts the configured backends in order and picks the CRL to publish: the first backend's own.
func (a *app) backends(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry,
	client kubernetes.Interface) ([]ca.NamedBackend, func(context.Context) ([]byte, error), error) {
	var named []ca.NamedBackend
	var crl func(context.Context) ([]byte, error)
	for _, bc := range cfg.Backends {
		blog := log.With("backend", bc.Name)
		var b backends.Backend
		switch {
		case bc.File != nil:
			fc := *bc.File
			fc.Logger, fc.Registerer = blog, reg
			a.caSwitch.fileConfig(&fc)
			if fc.Secret != "" {
				fc.Kube = client
			}
			fb, err := file.New(ctx, fc)
			if err != nil {
				return nil, nil, fmt.Errorf("backend %s: %w", bc.Name, err)
			}
			a.closers = append(a.closers, fb.Close)
			a.caSwitch.started(&fc, fb)
			b = fb
			if crl == nil {
				crl = func(ctx context.Context) ([]byte, error) {
					b, err := fb.CRLBundle(ctx)
					if err != nil {
						return nil, err
					}
					if block, _ := pem.Decode(b); block != nil {
						return block.Bytes, nil
					}
					return nil, fmt.Errorf("no ca-crl.pem in the cacerts: %w", server.ErrNoCRL)
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

package trustbundle

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/internal/leader"
)

// ConfigMapName and ConfigMapKey are where Istio's agents look for the mesh's roots in their namespace.
const (
	ConfigMapName = "istio-ca-root-cert"
	ConfigMapKey  = "root-cert.pem"
)

// IstioSignerName and IstioBundleName are the ClusterTrustBundle names Istio mounts as root-cert.pem when istiod
// and its injector run with ENABLE_CLUSTER_TRUST_BUNDLE_API=true (constants of istio/istio's
// ClusterTrustBundle controller): the object istio.io:istiod-ca:root-cert of signer istio.io/istiod-ca.
const (
	IstioSignerName = "istio.io/istiod-ca"
	IstioBundleName = "root-cert"
)

// The defaults of PostQuantumConfig: names of meshca's own, so that no consumer of the classical outputs
// (Envoy through root-cert.pem) ever loads an ML-DSA root.
const (
	DefaultPostQuantumSignerName    = "meshca.io/workload-ca-mldsa"
	DefaultPostQuantumConfigMapName = "meshca-root-cert-mldsa"
	DefaultPostQuantumConfigMapKey  = "root-cert-mldsa.pem"
	DefaultPostQuantumLeaseName     = "meshca-trustbundle-mldsa"
)

// ErrConflictingNames means two settings name the same object, or a setting names an object another setting
// sets: istioClusterTrustBundle beside signerName, or an ML-DSA output that is a classical one.
var ErrConflictingNames = errors.New("trustbundle: conflicting names")

// ManagedByLabel marks the objects a Publisher owns, with the value "meshca".
const ManagedByLabel = "app.kubernetes.io/managed-by"

// Config configures a Publisher. The zero value of every field but Kube, Source and LeaseNamespace has a
// default.
type Config struct {
	// SignerName is the ClusterTrustBundle's signer, e.g. "meshca.io/workload-ca" (the default). meshca needs
	// the "attest" verb on signers.certificates.k8s.io with this resource name.
	SignerName string `json:"signerName,omitempty"`
	// BundleName is the part of the ClusterTrustBundle's name after the signer prefix. Default "roots", giving
	// "meshca.io:workload-ca:roots".
	BundleName string `json:"bundleName,omitempty"`
	// IstioClusterTrustBundle publishes the ClusterTrustBundle under Istio's names (IstioSignerName,
	// IstioBundleName) instead of meshca's, for meshes that run with ENABLE_CLUSTER_TRUST_BUNDLE_API. It
	// excludes SignerName and BundleName; the RBAC is in manifests/components/istio-trust-bundle.
	IstioClusterTrustBundle bool `json:"istioClusterTrustBundle,omitempty"`
	// DisableClusterTrustBundle publishes only the ConfigMaps (clusters older than 1.33, or without the API).
	DisableClusterTrustBundle bool `json:"disableClusterTrustBundle,omitempty"`
	// DisableConfigMaps publishes only the ClusterTrustBundle.
	DisableConfigMaps bool `json:"disableConfigMaps,omitempty"`
	// NamespaceSelector is a label selector ("istio-injection=enabled", "env in (prod,staging)") for the
	// namespaces that get the istio-ca-root-cert ConfigMap. Empty selects every namespace.
	NamespaceSelector string `json:"namespaceSelector,omitempty"`

	// PostQuantum, when set, publishes the ML-DSA roots (PostQuantumSource) as well, to a ClusterTrustBundle
	// and ConfigMaps of their own, with their own Lease; the other settings apply to both. Never into the
	// outputs above: Envoy cannot parse ML-DSA certificates, and one unparseable root breaks the whole bundle.
	PostQuantum *PostQuantumConfig `json:"postQuantum,omitempty"`
	// Composite, when set, publishes the composite (hybrid ML-DSA-65 + ECDSA-P256) roots (CompositeSource) the
	// same way, to outputs and a Lease of their own (defaults DefaultComposite*), for the same reason.
	Composite *PostQuantumConfig `json:"composite,omitempty"`

	// LeaseConfig locates the Lease that decides which replica writes (leaseNamespace is required; leaseName
	// defaults to DefaultLeaseName) and carries its timings.
	leader.LeaseConfig
	// PollInterval is how often the leader reads the Source for changed roots. Default 5s.
	PollInterval time.Duration `json:"pollInterval,omitempty"`

	// Kube is the client configuration (in-cluster or kubeconfig). When it sets no rate limit, the publisher
	// uses 50 requests per second (burst 100) instead of client-go's 5.
	Kube *rest.Config `json:"-"`
	// Source provides the roots; normally the *ca.Issuer.
	Source Source `json:"-"`
	// PostQuantumSource provides the ML-DSA roots when PostQuantum is set; normally
	// SourceFunc((*ca.Issuer).PostQuantumRoots).
	PostQuantumSource Source `json:"-"`
	// CompositeSource provides the composite roots when Composite is set; normally
	// SourceFunc((*ca.Issuer).CompositeRoots).
	CompositeSource Source `json:"-"`
	// Logger receives publish events and errors; default slog.Default().
	Logger *slog.Logger `json:"-"`
	// Registerer, when set, receives the publisher's metrics.
	Registerer prometheus.Registerer `json:"-"`

	// Set for the ML-DSA and composite publishers only; empty means the classical names.
	configMapName, configMapKey string
	roots                       string // "" (classical), rootsMLDSA or rootsComposite: the metrics' names
}

// PostQuantumConfig names the outputs of the ML-DSA roots (Config.PostQuantum) or of the composite roots
// (Config.Composite). Every field has a default, which differs between the two; the comments give the ML-DSA
// ones.
type PostQuantumConfig struct {
	// SignerName is the ML-DSA ClusterTrustBundle's signer; default DefaultPostQuantumSignerName. meshca needs
	// "attest" on it (the shipped RBAC grants meshca.io/*).
	SignerName string `json:"signerName,omitempty"`
	// BundleName is the part of its name after the signer prefix; default "roots", giving
	// "meshca.io:workload-ca-mldsa:roots".
	BundleName string `json:"bundleName,omitempty"`
	// ConfigMapName and ConfigMapKey are the ConfigMap written into every selected namespace; defaults
	// DefaultPostQuantumConfigMapName and DefaultPostQuantumConfigMapKey. The key differs from root-cert.pem
	// so both ConfigMaps can be projected into one directory. istio-ca-root-cert is refused.
	ConfigMapName string `json:"configMapName,omitempty"`
	ConfigMapKey  string `json:"configMapKey,omitempty"`
	// LeaseName is the ML-DSA publisher's Lease, in LeaseNamespace; default DefaultPostQuantumLeaseName.
	LeaseName string `json:"leaseName,omitempty"`
}

func (c PostQuantumConfig) withDefaults() PostQuantumConfig {
	return c.withDefaultsOf(DefaultPostQuantumSignerName, DefaultPostQuantumConfigMapName,
		DefaultPostQuantumConfigMapKey, DefaultPostQuantumLeaseName)
}

func (c PostQuantumConfig) withDefaultsOf(signer, configMap, key, lease string) PostQuantumConfig {
	for _, d := range []struct {
		v   *string
		def string
	}{
		{&c.SignerName, signer}, {&c.BundleName, "roots"},
		{&c.ConfigMapName, configMap}, {&c.ConfigMapKey, key}, {&c.LeaseName, lease},
	} {
		if *d.v == "" {
			*d.v = d.def
		}
	}
	return c
}

// Validate reports every problem with c at once. It has no side effects.
func (c *Config) Validate() error {
	var errs []error
	if c.DisableClusterTrustBundle && c.DisableConfigMaps {
		errs = append(
			errs,
			errors.New("trustbundle: both the ClusterTrustBundle and the ConfigMaps are disabled: nothing to publish"),
		)
	}
	if c.SignerName != "" {
		if err := validateSignerName(c.SignerName); err != nil {
			errs = append(errs, err)
		}
	}
	if c.BundleName != "" {
		if msgs := validation.IsDNS1123Subdomain(c.BundleName); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("trustbundle: bundleName %q: %s", c.BundleName, strings.Join(msgs, "; ")))
		}
	}
	if _, err := labels.Parse(c.NamespaceSelector); err != nil {
		errs = append(errs, fmt.Errorf("trustbundle: namespaceSelector %q: %w", c.NamespaceSelector, err))
	}
	if c.PollInterval < 0 {
		errs = append(errs, errors.New("trustbundle: durations must not be negative"))
	}
	if c.IstioClusterTrustBundle && (c.SignerName != "" && c.SignerName != IstioSignerName ||
		c.BundleName != "" && c.BundleName != IstioBundleName) {
		errs = append(errs, fmt.Errorf("%w: istioClusterTrustBundle sets signerName and bundleName to Istio's "+
			"names: remove signerName and bundleName, or istioClusterTrustBundle", ErrConflictingNames))
	}
	errs = append(errs, c.LeaseConfig.Validate("trustbundle"))
	if c.PostQuantum != nil {
		errs = append(errs, c.validateApart("postQuantum", c.PostQuantum.withDefaults(),
			DefaultPostQuantumConfigMapName))
	}
	if c.Composite != nil {
		errs = append(errs, c.validateApart("composite", c.Composite.withCompositeDefaults(),
			DefaultCompositeConfigMapName), c.validateCompositeApart())
	}
	return errors.Join(errs...)
}

// validateApart checks the outputs of the ML-DSA or composite roots (key postQuantum or composite), and that
// none of them is a classical one.
func (c *Config) validateApart(key string, pq PostQuantumConfig, defaultConfigMap string) error {
	var errs []error
	if err := validateSignerName(pq.SignerName); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", key, err))
	}
	if msgs := validation.IsDNS1123Subdomain(pq.BundleName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("trustbundle: %s.bundleName %q: %s", key, pq.BundleName,
			strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Subdomain(pq.ConfigMapName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("trustbundle: %s.configMapName %q: %s", key, pq.ConfigMapName,
			strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsConfigMapKey(pq.ConfigMapKey); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("trustbundle: %s.configMapKey %q: %s", key, pq.ConfigMapKey,
			strings.Join(msgs, "; ")))
	}
	classical := c.WithDefaults()
	if pq.ConfigMapName == ConfigMapName {
		errs = append(errs, fmt.Errorf("%w: %s.configMapName must not be %s: Envoy loads it and cannot "+
			"parse these roots; use another name (default %s)", ErrConflictingNames, key, ConfigMapName,
			defaultConfigMap))
	}
	if ClusterTrustBundleName(pq.SignerName, pq.BundleName) ==
		ClusterTrustBundleName(classical.SignerName, classical.BundleName) {
		errs = append(errs, fmt.Errorf("%w: %s.signerName and bundleName name the classical "+
			"ClusterTrustBundle: give these roots names of their own", ErrConflictingNames, key))
	}
	if pq.LeaseName == classical.LeaseConfig.WithDefaults(DefaultLeaseName).LeaseName {
		errs = append(errs, fmt.Errorf("%w: %s.leaseName must differ from leaseName", ErrConflictingNames, key))
	}
	return errors.Join(errs...)
}

// validateSignerName checks the form Kubernetes requires: "<DNS subdomain>/<path>".
func validateSignerName(s string) error {
	domain, path, ok := strings.Cut(s, "/")
	if !ok || path == "" || len(validation.IsDNS1123Subdomain(domain)) > 0 || strings.Contains(path, "/") {
		return fmt.Errorf("trustbundle: signerName %q must look like \"example.com/signer-name\"", s)
	}
	return nil
}

// WithDefaults returns c with every unset setting at the default New applies (for meshca config print
// --defaults).
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.IstioClusterTrustBundle {
		c.SignerName, c.BundleName = IstioSignerName, IstioBundleName
	}
	if c.PostQuantum != nil {
		pq := c.PostQuantum.withDefaults()
		c.PostQuantum = &pq
	}
	if c.Composite != nil {
		hy := c.Composite.withCompositeDefaults()
		c.Composite = &hy
	}
	if c.configMapName == "" {
		c.configMapName, c.configMapKey = ConfigMapName, ConfigMapKey
	}
	if c.SignerName == "" {
		c.SignerName = "meshca.io/workload-ca"
	}
	if c.BundleName == "" {
		c.BundleName = "roots"
	}
	if c.PollInterval == 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// apart returns the configuration of the ML-DSA or composite roots' publisher (roots rootsMLDSA or
// rootsComposite): c's settings with pq's names and Lease, src, and the metric names of roots. c has its
// defaults set.
func (c Config) apart(pq PostQuantumConfig, src Source, roots string) Config {
	d := c
	d.SignerName, d.BundleName, d.LeaseName = pq.SignerName, pq.BundleName, pq.LeaseName
	d.IstioClusterTrustBundle, d.PostQuantum, d.Composite = false, nil, nil
	d.Source, d.PostQuantumSource, d.CompositeSource = src, nil, nil
	d.configMapName, d.configMapKey = pq.ConfigMapName, pq.ConfigMapKey
	d.roots = roots
	d.Logger = c.Logger.With("roots", roots)
	return d
}

// DefaultLeaseName is the trust bundle publisher's Lease when leaseName is not set.
const DefaultLeaseName = "meshca-trustbundle"

// ClusterTrustBundleName returns the name of the ClusterTrustBundle for signer and bundle name: the signer
// with "/" replaced by ":", a ":", then the bundle name.
func ClusterTrustBundleName(signerName, bundleName string) string {
	return strings.ReplaceAll(signerName, "/", ":") + ":" + bundleName
}

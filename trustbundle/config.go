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
	// DisableClusterTrustBundle publishes only the ConfigMaps (clusters older than 1.33, or without the API).
	DisableClusterTrustBundle bool `json:"disableClusterTrustBundle,omitempty"`
	// DisableConfigMaps publishes only the ClusterTrustBundle.
	DisableConfigMaps bool `json:"disableConfigMaps,omitempty"`
	// NamespaceSelector is a label selector ("istio-injection=enabled", "env in (prod,staging)") for the
	// namespaces that get the istio-ca-root-cert ConfigMap. Empty selects every namespace.
	NamespaceSelector string `json:"namespaceSelector,omitempty"`

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
	// Logger receives publish events and errors; default slog.Default().
	Logger *slog.Logger `json:"-"`
	// Registerer, when set, receives the publisher's metrics.
	Registerer prometheus.Registerer `json:"-"`
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
	errs = append(errs, c.LeaseConfig.Validate("trustbundle"))
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

// DefaultLeaseName is the trust bundle publisher's Lease when leaseName is not set.
const DefaultLeaseName = "meshca-trustbundle"

// ClusterTrustBundleName returns the name of the ClusterTrustBundle for signer and bundle name: the signer
// with "/" replaced by ":", a ":", then the bundle name.
func ClusterTrustBundleName(signerName, bundleName string) string {
	return strings.ReplaceAll(signerName, "/", ":") + ":" + bundleName
}

package kubesigner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/internal/leader"
)

// DefaultRequester is istiod's service account in a default installation: the registration authority allowed
// when Config.Requesters is empty.
const DefaultRequester = "system:serviceaccount:istio-system:istiod"

// DefaultLeaseName is the signer's Lease when leaseName is not set.
const DefaultLeaseName = "meshca-k8s-signer"

// Config configures a Signer. It is the k8sSigner section of meshca's configuration file.
type Config struct {
	// Signers are the signer names meshca signs for (istiod's K8S_SIGNER, or CERT_SIGNER_DOMAIN/<CertSigner>),
	// each with the backends that sign for it. At least one is required.
	Signers []SignerConfig `json:"signers"`
	// Requesters are the Kubernetes user names allowed to ask for certificates as registration authorities,
	// each a service account ("system:serviceaccount:<namespace>:<name>"). Default [DefaultRequester].
	Requesters []string `json:"requesters,omitempty"`
	// LeaseConfig locates the Lease that decides which replica signs (leaseNamespace, meshca's own namespace,
	// is required; leaseName defaults to DefaultLeaseName) and carries its timings.
	leader.LeaseConfig
	// Workers is how many requests are signed at once. Default 4.
	Workers int `json:"workers,omitempty"`
	// CABundleConfigMap is the ConfigMap in LeaseNamespace that the leader keeps equal to meshca's trust
	// bundle (key root-cert.pem), for istiod to mount at /etc/external-ca-cert: the CA file its RA verifies
	// chains with and distributes as istio-ca-root-cert. Default "external-ca-cert".
	CABundleConfigMap string `json:"caBundleConfigMap,omitempty"`
	// DisableCABundle leaves the CA bundle ConfigMap to the operator.
	DisableCABundle bool `json:"disableCABundle,omitempty"`
	// PollInterval is how often the leader reads the trust bundle for the CA bundle ConfigMap. Default 5s.
	PollInterval time.Duration `json:"pollInterval,omitempty"`

	// Kube is the client configuration. When it sets no rate limit, 50 requests per second (burst 100) are used.
	Kube *rest.Config `json:"-"`
	// Issuer signs; normally the *ca.Issuer.
	Issuer Issuer `json:"-"`
	// Router chooses the backends per request; default the Signers mapping (StaticRouter).
	Router Router `json:"-"`
	// Logger receives leadership changes and errors; default slog.Default().
	Logger *slog.Logger `json:"-"`
	// Registerer, when set, receives the signer's metrics.
	Registerer prometheus.Registerer `json:"-"`
}

// SignerConfig is one signer name and the backends that sign for it.
type SignerConfig struct {
	// Name is the signer name, "<domain>/<path>", e.g. "meshca.io/workloads". Names under kubernetes.io are
	// Kubernetes' own and refused.
	Name string `json:"name"`
	// Backends are the names of meshca's backends (backends[].name) that may sign for this signer. Empty
	// means all of them. They narrow what the deciding policy rule allows (policy.rules[].backends), in the
	// rule's failover order; a request for which the two share no backend is marked Failed
	// (BackendNotAllowed).
	Backends []string `json:"backends,omitempty"`
}

// Issuer is the issuance core as the signer uses it; *ca.Issuer implements it.
type Issuer interface {
	IssueDelegated(ctx context.Context, req *ca.DelegatedRequest) (*ca.Result, error)
	// TrustBundle returns the roots workloads trust, as PEM.
	TrustBundle(ctx context.Context) ([]byte, error)
}

// Router says which backends sign a request for a signer name and workload namespace. The configured
// Signers mapping is the default (StaticRouter); per-namespace policy can supply its own.
type Router interface {
	// Owns reports whether meshca signs for signerName at all. Requests for other signers are left alone.
	Owns(signerName string) bool
	// Route returns the names of the backends that may sign for signerName in namespace; empty means all.
	// The issuer narrows the deciding policy rule's backends to them, keeping the rule's failover order.
	// An error refuses the request: wrap ca.ErrPermissionDenied to mark it Failed.
	Route(signerName, namespace string) ([]string, error)
}

// StaticRouter routes by signer name alone, as configured in Config.Signers.
type StaticRouter []SignerConfig

// Owns implements Router.
func (r StaticRouter) Owns(signerName string) bool {
	return slices.ContainsFunc(r, func(s SignerConfig) bool { return s.Name == signerName })
}

// Route implements Router.
func (r StaticRouter) Route(signerName, _ string) ([]string, error) {
	for _, s := range r {
		if s.Name == signerName {
			return s.Backends, nil
		}
	}
	return nil, fmt.Errorf("%w: signer %s is not configured", ca.ErrPermissionDenied, ca.Bounded(signerName))
}

// Validate reports every problem with c that a configuration file can cause. It has no side effects.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Signers) == 0 {
		errs = append(errs, errors.New("kubesigner: signers: name at least one signer, e.g. meshca.io/workloads"))
	}
	seen := map[string]bool{}
	for n, s := range c.Signers {
		if err := ValidateSignerName(s.Name); err != nil {
			errs = append(errs, fmt.Errorf("kubesigner: signers[%d].name: %w", n, err))
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("kubesigner: signers[%d].name: %q is listed twice", n, s.Name))
		}
		seen[s.Name] = true
		for m, b := range s.Backends {
			if b == "" || slices.Contains(s.Backends[:m], b) {
				errs = append(errs, fmt.Errorf("kubesigner: signers[%d].backends[%d]: empty or repeated name", n, m))
			}
		}
	}
	for n, r := range c.Requesters {
		if _, _, err := serviceAccount(r); err != nil {
			errs = append(errs, fmt.Errorf("kubesigner: requesters[%d]: %w", n, err))
		}
	}
	errs = append(errs, c.LeaseConfig.Validate("kubesigner"))
	if c.CABundleConfigMap != "" {
		if msgs := validation.IsDNS1123Subdomain(c.CABundleConfigMap); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("kubesigner: caBundleConfigMap: %q: %s", c.CABundleConfigMap,
				strings.Join(msgs, "; ")))
		}
	}
	if c.Workers < 0 || c.PollInterval < 0 {
		errs = append(errs, errors.New("kubesigner: workers and pollInterval must not be negative"))
	}
	return errors.Join(errs...)
}

// CheckBackends reports signers that name a backend not in names (meshca's configured backends).
func (c *Config) CheckBackends(names []string) error {
	var errs []error
	for n, s := range c.Signers {
		for m, b := range s.Backends {
			if !slices.Contains(names, b) {
				errs = append(errs, fmt.Errorf("kubesigner: signers[%d].backends[%d]: no backend is named %q; "+
					"configured are %q", n, m, b, names))
			}
		}
	}
	return errors.Join(errs...)
}

// ValidateSignerName checks a Kubernetes signer name: "<domain>/<path>" with a DNS subdomain as the domain,
// and not one of Kubernetes' own (kubernetes.io, k8s.io).
func ValidateSignerName(name string) error {
	domain, path, ok := strings.Cut(name, "/")
	if !ok || path == "" || strings.ContainsAny(path, " \t\n") {
		return fmt.Errorf("%q is not <domain>/<path>, e.g. meshca.io/workloads", name)
	}
	if msgs := validation.IsDNS1123Subdomain(domain); len(msgs) > 0 {
		return fmt.Errorf("%q: domain: %s", name, strings.Join(msgs, "; "))
	}
	for _, own := range []string{"kubernetes.io", "k8s.io"} {
		if domain == own || strings.HasSuffix(domain, "."+own) {
			return fmt.Errorf("%q: signers under %s belong to Kubernetes", name, own)
		}
	}
	return nil
}

// serviceAccount splits a service account's user name, "system:serviceaccount:<namespace>:<name>".
func serviceAccount(user string) (ns, sa string, err error) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if ok {
		ns, sa, ok = strings.Cut(rest, ":")
	}
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(sa)) > 0 {
		return "", "", fmt.Errorf("%q is not a service account user name, system:serviceaccount:<namespace>:<name>",
			ca.Bounded(user))
	}
	return ns, sa, nil
}

func (c *Config) setDefaults() {
	if len(c.Requesters) == 0 {
		c.Requesters = []string{DefaultRequester}
	}
	c.LeaseConfig = c.LeaseConfig.WithDefaults(DefaultLeaseName)
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.CABundleConfigMap == "" {
		c.CABundleConfigMap = "external-ca-cert"
	}
	if c.PollInterval == 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.Router == nil {
		c.Router = StaticRouter(c.Signers)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

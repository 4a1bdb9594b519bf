package kubepublish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/internal/kubesync"
	"github.com/meshca/meshca/internal/leader"
)

// The ConfigMap Istio's proxies read, and its labels.
const (
	ConfigMapName = "istio-ca-crl"
	ConfigMapKey  = "ca-crl.pem"
	// IstioConfigLabel is set to "true", as istiod labels the ConfigMaps it distributes.
	IstioConfigLabel = "istio.io/config"
	// ManagedByLabel is set to "meshca".
	ManagedByLabel = "app.kubernetes.io/managed-by"
)

// Source is the ca-crl.pem to publish; *crl.Publisher implements it.
type Source interface {
	// PEM returns the content, "" meaning no CRL, and false while it is not known yet.
	PEM() ([]byte, bool)
	// Changed returns a channel that is closed when PEM next changes.
	Changed() <-chan struct{}
}

// Config configures a Publisher.
type Config struct {
	// NamespaceSelector is a label selector for the namespaces that get the ConfigMap; empty selects all.
	NamespaceSelector string `json:"namespaceSelector,omitempty"`
	// LeaseConfig locates the Lease that decides which replica writes (leaseNamespace is required; leaseName
	// defaults to DefaultLeaseName) and carries its timings.
	leader.LeaseConfig

	// Kube is the client configuration. When it sets no rate limit, 50 requests per second (burst 100) are
	// used instead of client-go's 5, so a change reaches a thousand namespaces in seconds.
	Kube *rest.Config `json:"-"`
	// Source gives the content; normally the *crl.Publisher.
	Source Source `json:"-"`
	// Logger receives leadership changes and errors; default slog.Default().
	Logger *slog.Logger `json:"-"`
	// Registerer, when set, receives the leader gauge and the write counter.
	Registerer prometheus.Registerer `json:"-"`
	// Metrics, when set, counts failed writes in meshca_crl_publish_errors_total{target="configmap"}.
	Metrics *crl.Metrics `json:"-"`
}

// Validate reports every problem with c that a configuration file can cause. It has no side effects.
func (c *Config) Validate() error {
	var errs []error
	if _, err := labels.Parse(c.NamespaceSelector); err != nil {
		errs = append(errs, fmt.Errorf("kubepublish: namespaceSelector %q: %w", c.NamespaceSelector, err))
	}
	errs = append(errs, c.LeaseConfig.Validate("kubepublish"))
	return errors.Join(errs...)
}

// DefaultLeaseName is the CRL publisher's Lease when leaseName is not set.
const DefaultLeaseName = "meshca-crl"

// Publisher keeps the istio-ca-crl ConfigMaps equal to its Source while it holds the Lease.
type Publisher struct {
	cfg     Config
	kube    kubernetes.Interface
	sel     labels.Selector
	m       *crl.Metrics
	elector *leader.Elector
	lead    prometheus.Gauge
	writes  *prometheus.CounterVec
}

// New returns a Publisher for cfg. It does not contact the API server.
func New(cfg Config) (*Publisher, error) {
	if cfg.Kube == nil || cfg.Source == nil {
		return nil, errors.New("kubepublish: a Kubernetes client configuration and a source are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Publisher{cfg: cfg, m: cfg.Metrics}
	var err error
	if p.kube, err = kubernetes.NewForConfig(kubesync.WriterConfig(cfg.Kube)); err != nil {
		return nil, fmt.Errorf("kubepublish: Kubernetes client: %w", err)
	}
	p.sel, _ = labels.Parse(cfg.NamespaceSelector) // checked by Validate
	if p.m == nil {
		p.m, _ = crl.NewMetrics(nil)
	}
	p.lead = prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshca_crl_publisher_leader",
		Help: "1 while this replica holds the CRL Lease and writes the istio-ca-crl ConfigMaps, else 0."})
	p.writes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_crl_configmap_writes_total",
		Help: "istio-ca-crl ConfigMaps written, by operation (create, update)."}, []string{"operation"})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{p.lead, p.writes} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("kubepublish: registering metrics: %w", err)
			}
		}
	}
	p.elector = leader.NewElector(leader.ElectorConfig{Lease: cfg.LeaseConfig.WithDefaults(DefaultLeaseName),
		Client: p.kube.CoordinationV1(), Role: "CRL ConfigMap publisher", Logger: cfg.Logger, Gauge: p.lead})
	return p, nil
}

// Leader reports whether this replica holds the Lease and writes.
func (p *Publisher) Leader() bool { return p.elector.Leading() }

// Run campaigns for the Lease and publishes while it holds it, until ctx ends; a replica that loses the Lease
// stops writing and campaigns again. At the end the Lease is released after the last write, so another
// replica takes over at its next retry. Run returns nil when ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	if err := p.elector.Run(ctx, func(ctx context.Context) { (&leaderTerm{p: p}).run(ctx) }); err != nil {
		return fmt.Errorf("kubepublish: %w", err)
	}
	return nil
}

package trustbundle

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/internal/kubesync"
	"github.com/meshca/meshca/internal/leader"
)

// Publisher keeps the cluster's ClusterTrustBundle and istio-ca-root-cert ConfigMaps equal to its Source's
// roots while it holds the Lease. Create it with New and start it with Run.
type Publisher struct {
	cfg     Config
	kube    kubernetes.Interface
	dyn     dynamic.Interface
	sel     labels.Selector
	m       *metrics
	elector *leader.Elector
	pq      *Publisher // the ML-DSA roots' publisher (Config.PostQuantum), or nil
	hybrid  *Publisher // the composite roots' publisher (Config.Composite), or nil
}

// New returns a Publisher for cfg. It does not contact the API server.
func New(cfg Config) (*Publisher, error) {
	if cfg.Kube == nil || cfg.Source == nil {
		return nil, errors.New("trustbundle: a Kubernetes client configuration and a roots source are required")
	}
	if cfg.PostQuantum != nil && cfg.PostQuantumSource == nil {
		return nil, errors.New("trustbundle: postQuantum needs a source of ML-DSA roots (configure file.mldsaDir)")
	}
	if cfg.Composite != nil && cfg.CompositeSource == nil {
		return nil, errors.New("trustbundle: composite needs a source of composite roots (configure " +
			"file.compositeDir)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	p, err := newPublisher(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.PostQuantum != nil {
		if p.pq, err = newPublisher(cfg.apart(*cfg.PostQuantum, cfg.PostQuantumSource, rootsMLDSA)); err != nil {
			return nil, err
		}
	}
	if cfg.Composite != nil {
		if p.hybrid, err = newPublisher(cfg.apart(*cfg.Composite, cfg.CompositeSource, rootsComposite)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// newPublisher returns the Publisher of one set of roots; cfg is valid and has its defaults.
func newPublisher(cfg Config) (*Publisher, error) {
	p := &Publisher{cfg: cfg}
	kc := kubesync.WriterConfig(cfg.Kube)
	var err error
	if p.kube, err = kubernetes.NewForConfig(kc); err != nil {
		return nil, fmt.Errorf("trustbundle: Kubernetes client: %w", err)
	}
	if p.dyn, err = dynamic.NewForConfig(kc); err != nil {
		return nil, fmt.Errorf("trustbundle: Kubernetes client: %w", err)
	}
	p.sel, _ = labels.Parse(cfg.NamespaceSelector) // checked by Validate
	if p.m, err = newMetrics(cfg.Registerer, cfg.roots); err != nil {
		return nil, err
	}
	p.elector = leader.NewElector(leader.ElectorConfig{Lease: cfg.LeaseConfig.WithDefaults(DefaultLeaseName),
		Client: p.kube.CoordinationV1(), Role: "trust bundle publisher", Logger: cfg.Logger, Gauge: p.m.leader})
	return p, nil
}

// Leader reports whether this replica currently holds the Lease and publishes (the classical roots' Lease; the
// ML-DSA roots have their own).
func (p *Publisher) Leader() bool { return p.elector.Leading() }

// ClusterTrustBundleName returns the name of the ClusterTrustBundle this Publisher writes.
func (p *Publisher) ClusterTrustBundleName() string {
	return ClusterTrustBundleName(p.cfg.SignerName, p.cfg.BundleName)
}

// PostQuantumClusterTrustBundleName returns the name of the ClusterTrustBundle of the ML-DSA roots, or "" when
// Config.PostQuantum is not set.
func (p *Publisher) PostQuantumClusterTrustBundleName() string {
	if p.pq == nil {
		return ""
	}
	return p.pq.ClusterTrustBundleName()
}

// CompositeClusterTrustBundleName returns the name of the ClusterTrustBundle of the composite roots, or ""
// when Config.Composite is not set.
func (p *Publisher) CompositeClusterTrustBundleName() string {
	if p.hybrid == nil {
		return ""
	}
	return p.hybrid.ClusterTrustBundleName()
}

// Run campaigns for the Lease and publishes while it holds it, until ctx ends. A replica that loses the Lease
// stops writing and campaigns again. When ctx ends, the leader stops writing first and then releases the Lease
// so another replica takes over at its next retry instead of after LeaseDuration. Run returns nil when ctx
// ends, or an error when leader election cannot be configured.
// With Config.PostQuantum and Config.Composite, the ML-DSA and composite roots are published the same way,
// each under its own Lease, beside.
func (p *Publisher) Run(ctx context.Context) error {
	children := make(chan error, 2)
	n := 0
	for _, c := range []*Publisher{p.pq, p.hybrid} {
		if c != nil {
			n++
			go func() { children <- c.run(ctx) }()
		}
	}
	errs := []error{p.run(ctx)}
	for range n {
		errs = append(errs, <-children)
	}
	return errors.Join(errs...)
}

func (p *Publisher) run(ctx context.Context) error {
	if err := p.elector.Run(ctx, func(ctx context.Context) { (&leaderTerm{p: p}).run(ctx) }); err != nil {
		return fmt.Errorf("trustbundle: %w", err)
	}
	return nil
}

type metrics struct {
	errors *prometheus.CounterVec
	writes *prometheus.CounterVec
	leader prometheus.Gauge
	roots  prometheus.Gauge
}

// metricNames are the names of the errors, writes, leader and roots metrics of the classical roots' publisher
// (""), of the ML-DSA roots' (postQuantum) and of the composite roots' (composite).
var metricNames = map[string][4]string{
	"": {"meshca_trustbundle_publish_errors_total", "meshca_trustbundle_writes_total",
		"meshca_trustbundle_leader", "meshca_trustbundle_roots"},
	rootsMLDSA: {"meshca_trustbundle_mldsa_publish_errors_total", "meshca_trustbundle_mldsa_writes_total",
		"meshca_trustbundle_mldsa_leader", "meshca_trustbundle_mldsa_roots"},
	rootsComposite: {"meshca_trustbundle_composite_publish_errors_total",
		"meshca_trustbundle_composite_writes_total", "meshca_trustbundle_composite_leader",
		"meshca_trustbundle_composite_roots"},
}

// newMetrics returns the metrics of the publisher of roots (see metricNames).
func newMetrics(reg prometheus.Registerer, roots string) (*metrics, error) {
	names := metricNames[roots]
	m := &metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: names[0],
			Help: "Failures to publish the trust bundle by target (source, clustertrustbundle, configmap).",
		}, []string{"target"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: names[1],
			Help: "Objects written by the trust bundle publisher by target (clustertrustbundle, configmap) " +
				"and operation (create, update).",
		}, []string{"target", "operation"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: names[2],
			Help: "1 while this replica holds the trust bundle Lease and publishes, else 0.",
		}),
		roots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: names[3],
			Help: "Number of roots in the trust bundle this replica publishes while it leads (0 until it first leads).",
		}),
	}
	for _, t := range []string{"source", "clustertrustbundle", "configmap"} {
		m.errors.WithLabelValues(t)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.errors, m.writes, m.leader, m.roots} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("trustbundle: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

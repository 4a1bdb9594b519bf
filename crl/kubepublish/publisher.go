package kubepublish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/meshca/meshca/crl"
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
	// LeaseNamespace and LeaseName locate the Lease that decides which replica writes. LeaseNamespace is
	// required (meshca's own namespace); LeaseName defaults to "meshca-crl".
	LeaseNamespace string `json:"leaseNamespace"`
	LeaseName      string `json:"leaseName,omitempty"`
	// Identity names this replica in the Lease; default the host name (the pod name).
	Identity string `json:"identity,omitempty"`
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's leader election timings; defaults 15s, 10s
	// and 2s.
	LeaseDuration time.Duration `json:"leaseDuration,omitempty"`
	RenewDeadline time.Duration `json:"renewDeadline,omitempty"`
	RetryPeriod   time.Duration `json:"retryPeriod,omitempty"`

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
	if c.LeaseNamespace == "" {
		errs = append(errs, errors.New("kubepublish: leaseNamespace is required: the namespace meshca runs in"))
	} else if msgs := validation.IsDNS1123Label(c.LeaseNamespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("kubepublish: leaseNamespace %q: %s", c.LeaseNamespace,
			strings.Join(msgs, "; ")))
	}
	if c.LeaseName != "" {
		if msgs := validation.IsDNS1123Subdomain(c.LeaseName); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("kubepublish: leaseName %q: %s", c.LeaseName, strings.Join(msgs, "; ")))
		}
	}
	if c.LeaseDuration < 0 || c.RenewDeadline < 0 || c.RetryPeriod < 0 {
		errs = append(errs, errors.New("kubepublish: durations must not be negative"))
	}
	d := *c
	d.setDefaults()
	if d.LeaseDuration <= d.RenewDeadline || d.RenewDeadline <= d.RetryPeriod {
		errs = append(errs, fmt.Errorf("kubepublish: need leaseDuration (%s) > renewDeadline (%s) > retryPeriod (%s)",
			d.LeaseDuration, d.RenewDeadline, d.RetryPeriod))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.LeaseName == "" {
		c.LeaseName = "meshca-crl"
	}
	if c.Identity == "" {
		c.Identity, _ = os.Hostname()
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 15 * time.Second
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = 10 * time.Second
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Publisher keeps the istio-ca-crl ConfigMaps equal to its Source while it holds the Lease.
type Publisher struct {
	cfg    Config
	kube   kubernetes.Interface
	sel    labels.Selector
	m      *crl.Metrics
	leader atomic.Bool
	lead   prometheus.Gauge
	writes *prometheus.CounterVec
}

// New returns a Publisher for cfg. It does not contact the API server.
func New(cfg Config) (*Publisher, error) {
	if cfg.Kube == nil || cfg.Source == nil {
		return nil, errors.New("kubepublish: a Kubernetes client configuration and a source are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	p := &Publisher{cfg: cfg, m: cfg.Metrics}
	kc := rest.CopyConfig(cfg.Kube)
	if kc.QPS == 0 && kc.RateLimiter == nil {
		kc.QPS, kc.Burst = 50, 100
	}
	var err error
	if p.kube, err = kubernetes.NewForConfig(kc); err != nil {
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
	return p, nil
}

// Leader reports whether this replica holds the Lease and writes.
func (p *Publisher) Leader() bool { return p.leader.Load() }

// Run campaigns for the Lease and publishes while it holds it, until ctx ends; a replica that loses the Lease
// stops writing and campaigns again. At the end the Lease is released after the last write, so another
// replica takes over at its next retry. Run returns nil when ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := p.campaign(ctx); err != nil {
			return err
		}
	}
	return nil
}

// campaign runs one leader election until this replica has led and lost, or ctx ends. It follows
// trustbundle.Publisher's: the elector's context outlives ctx until the term has stopped writing, because with
// ReleaseOnCancel the Lease is released when that context ends and no write may follow the release.
func (p *Publisher) campaign(ctx context.Context) error {
	leCtx, leCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer leCancel()
	var term sync.Mutex // held while leading
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: p.cfg.LeaseNamespace, Name: p.cfg.LeaseName},
			Client:     p.kube.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: p.cfg.Identity},
		},
		LeaseDuration:   p.cfg.LeaseDuration,
		RenewDeadline:   p.cfg.RenewDeadline,
		RetryPeriod:     p.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            p.cfg.LeaseNamespace + "/" + p.cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				term.Lock()
				defer term.Unlock()
				tctx, cancel := context.WithCancel(lctx)
				defer cancel()
				defer context.AfterFunc(ctx, cancel)()
				if ctx.Err() != nil || lctx.Err() != nil {
					return
				}
				p.leader.Store(true)
				p.lead.Set(1)
				p.cfg.Logger.Info("CRL ConfigMap publisher is the leader", "identity", p.cfg.Identity)
				(&leaderTerm{p: p}).run(tctx)
				p.leader.Store(false)
				p.lead.Set(0)
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return fmt.Errorf("kubepublish: leader election: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		le.Run(leCtx)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	term.Lock() // the term has stopped writing (or never started, and will find its context ended)
	term.Unlock()
	leCancel()
	<-done
	return nil
}

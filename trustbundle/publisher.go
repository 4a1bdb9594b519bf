package trustbundle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Publisher keeps the cluster's ClusterTrustBundle and istio-ca-root-cert ConfigMaps equal to its Source's
// roots while it holds the Lease. Create it with New and start it with Run.
type Publisher struct {
	cfg    Config
	kube   kubernetes.Interface
	dyn    dynamic.Interface
	sel    labels.Selector
	m      *metrics
	leader atomic.Bool
}

// New returns a Publisher for cfg. It does not contact the API server.
func New(cfg Config) (*Publisher, error) {
	if cfg.Kube == nil || cfg.Source == nil {
		return nil, errors.New("trustbundle: a Kubernetes client configuration and a roots source are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	p := &Publisher{cfg: cfg}
	kc := rest.CopyConfig(cfg.Kube)
	if kc.QPS == 0 && kc.RateLimiter == nil {
		// client-go's default of 5 writes per second would take minutes to roll a new root out to a
		// thousand namespaces; 50 matches what cluster controllers commonly use.
		kc.QPS, kc.Burst = 50, 100
	}
	var err error
	if p.kube, err = kubernetes.NewForConfig(kc); err != nil {
		return nil, fmt.Errorf("trustbundle: Kubernetes client: %w", err)
	}
	if p.dyn, err = dynamic.NewForConfig(kc); err != nil {
		return nil, fmt.Errorf("trustbundle: Kubernetes client: %w", err)
	}
	p.sel, _ = labels.Parse(cfg.NamespaceSelector) // checked by Validate
	if p.m, err = newMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	return p, nil
}

// Leader reports whether this replica currently holds the Lease and publishes.
func (p *Publisher) Leader() bool { return p.leader.Load() }

// ClusterTrustBundleName returns the name of the ClusterTrustBundle this Publisher writes.
func (p *Publisher) ClusterTrustBundleName() string {
	return ClusterTrustBundleName(p.cfg.SignerName, p.cfg.BundleName)
}

// Run campaigns for the Lease and publishes while it holds it, until ctx ends. A replica that loses the Lease
// stops writing and campaigns again. When ctx ends, the leader stops writing first and then releases the Lease
// so another replica takes over at its next retry instead of after LeaseDuration. Run returns nil when ctx
// ends, or an error when leader election cannot be configured.
func (p *Publisher) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := p.campaign(ctx); err != nil {
			return err
		}
	}
	return nil
}

// campaign runs one leader election until this replica has led and lost, or ctx ends.
func (p *Publisher) campaign(ctx context.Context) error {
	// The elector's own context outlives ctx until the term has stopped writing: with ReleaseOnCancel the Lease
	// is released when that context ends, and no write may follow the release.
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
				stop := context.AfterFunc(ctx, cancel)
				defer stop()
				if ctx.Err() != nil || lctx.Err() != nil { // campaign has moved on to releasing the Lease
					return
				}
				p.leader.Store(true)
				p.m.leader.Set(1)
				p.cfg.Logger.Info("trust bundle publisher is the leader", "identity", p.cfg.Identity,
					"lease", p.cfg.LeaseNamespace+"/"+p.cfg.LeaseName)
				(&leaderTerm{p: p}).run(tctx)
				p.leader.Store(false)
				p.m.leader.Set(0)
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != p.cfg.Identity {
					p.cfg.Logger.Info("trust bundle publisher follows another replica",
						"identity", p.cfg.Identity, "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("trustbundle: leader election: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		le.Run(leCtx)
	}()
	select {
	case <-done: // led and lost the Lease; the term's context has ended
	case <-ctx.Done(): // shutting down; the term's context ends with ctx
	}
	term.Lock() // the term has stopped writing (or never started, and will find its context ended)
	term.Unlock()
	leCancel() // release the Lease
	<-done
	if !p.leader.Load() && ctx.Err() == nil {
		p.cfg.Logger.Warn("trust bundle publisher lost the lease; campaigning again", "identity", p.cfg.Identity)
	}
	return nil
}

type metrics struct {
	errors *prometheus.CounterVec
	writes *prometheus.CounterVec
	leader prometheus.Gauge
	roots  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshca_trustbundle_publish_errors_total",
			Help: "Failures to publish the trust bundle by target (source, clustertrustbundle, configmap).",
		}, []string{"target"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshca_trustbundle_writes_total",
			Help: "Objects written by the trust bundle publisher by target (clustertrustbundle, configmap) " +
				"and operation (create, update).",
		}, []string{"target", "operation"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshca_trustbundle_leader",
			Help: "1 while this replica holds the trust bundle Lease and publishes, else 0.",
		}),
		roots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshca_trustbundle_roots",
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

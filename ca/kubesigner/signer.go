package kubesigner

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/internal/leader"
)

// Results counted in meshca_k8s_signer_requests_total{result}.
const (
	// ResultSigned: status.certificate was written.
	ResultSigned = "signed"
	// ResultFailed: the request was refused and marked Failed.
	ResultFailed = "failed"
	// ResultRetry: signing or writing failed for a reason a retry may cure; the request is queued again.
	ResultRetry = "retry"
)

// Signer signs CertificateSigningRequests for its signer names while it holds the Lease.
type Signer struct {
	cfg    Config
	kube   kubernetes.Interface
	leader atomic.Bool
	lead   prometheus.Gauge
	count  *prometheus.CounterVec
}

// New returns a Signer for cfg. It does not contact the API server.
func New(cfg Config) (*Signer, error) {
	if cfg.Kube == nil || cfg.Issuer == nil {
		return nil, errors.New("kubesigner: a Kubernetes client configuration and an issuer are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	kc := rest.CopyConfig(cfg.Kube)
	if kc.QPS == 0 && kc.RateLimiter == nil {
		kc.QPS, kc.Burst = 50, 100
	}
	s := &Signer{cfg: cfg}
	var err error
	if s.kube, err = kubernetes.NewForConfig(kc); err != nil {
		return nil, fmt.Errorf("kubesigner: Kubernetes client: %w", err)
	}
	s.lead = prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshca_k8s_signer_leader",
		Help: "1 while this replica holds the Kubernetes signer's Lease and signs CertificateSigningRequests."})
	s.count = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_k8s_signer_requests_total",
		Help: "CertificateSigningRequests answered by the Kubernetes signer, by signer name and result " +
			"(signed, failed, retry)."}, []string{"signer", "result"})
	for _, sc := range cfg.Signers {
		for _, r := range []string{ResultSigned, ResultFailed, ResultRetry} {
			s.count.WithLabelValues(sc.Name, r)
		}
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.lead, s.count} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("kubesigner: registering metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Leader reports whether this replica holds the Lease and signs.
func (s *Signer) Leader() bool { return s.leader.Load() }

// Run campaigns for the Lease and signs while it holds it, until ctx ends. It returns nil when ctx ends.
func (s *Signer) Run(ctx context.Context) error {
	return leader.Run(ctx, leader.Config{
		Client: s.kube.CoordinationV1(), Lease: s.cfg.LeaseConfig, Logger: s.cfg.Logger,
		Lead: func(ctx context.Context) {
			s.leader.Store(true)
			s.lead.Set(1)
			defer func() { s.leader.Store(false); s.lead.Set(0) }()
			(&term{s: s}).run(ctx)
		},
	})
}

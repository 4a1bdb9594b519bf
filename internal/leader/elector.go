package leader

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
)

// ElectorConfig configures an Elector.
type ElectorConfig struct {
	// Lease is the Lease to hold, with its defaults applied (LeaseConfig.WithDefaults).
	Lease LeaseConfig
	// Client reaches the Lease; kubernetes.Interface.CoordinationV1() gives one.
	Client coordinationv1.LeasesGetter
	// Role names the publisher in log lines, e.g. "trust bundle publisher".
	Role string
	// Logger receives leadership changes; default slog.Default().
	Logger *slog.Logger
	// Gauge, when set, is 1 while this replica leads, else 0.
	Gauge prometheus.Gauge
}

// Elector is Run for a publisher that reports whether it leads: trustbundle's and crl/kubepublish's.
type Elector struct {
	cfg     ElectorConfig
	leading atomic.Bool
}

// NewElector returns an Elector for cfg. It does not contact the API server.
func NewElector(cfg ElectorConfig) *Elector {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Elector{cfg: cfg}
}

// Leading reports whether this replica holds the Lease and runs its term.
func (e *Elector) Leading() bool { return e.leading.Load() }

// Run campaigns for the Lease until ctx ends and runs term while this replica holds it (see Run). A replica
// that loses the Lease says so and campaigns again.
func (e *Elector) Run(ctx context.Context, term func(context.Context)) error {
	l := e.cfg.Lease
	return Run(ctx, Config{Client: e.cfg.Client, Lease: l, Logger: e.cfg.Logger, Lead: func(tctx context.Context) {
		e.setLeading(true)
		e.cfg.Logger.Info(e.cfg.Role+" is the leader", "identity", l.Identity, "lease", l.String())
		term(tctx)
		e.setLeading(false)
		if ctx.Err() == nil {
			e.cfg.Logger.Warn(e.cfg.Role+" lost the lease; campaigning again", "identity", l.Identity)
		}
	}})
}

func (e *Elector) setLeading(on bool) {
	e.leading.Store(on)
	if e.cfg.Gauge != nil {
		v := 0.0
		if on {
			v = 1
		}
		e.cfg.Gauge.Set(v)
	}
}

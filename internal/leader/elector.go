package leader

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Config configures an Elector.
type Config struct {
	// Lease is the Lease to hold; WithDefaults is applied.
	Lease Lease
	// Client reaches the Lease; kubernetes.Interface.CoordinationV1() gives one.
	Client coordinationv1.LeasesGetter
	// Role names the publisher in log lines, e.g. "trust bundle publisher".
	Role string
	// Logger receives leadership changes; default slog.Default().
	Logger *slog.Logger
	// Gauge, when set, is 1 while this replica leads, else 0.
	Gauge prometheus.Gauge
}

// Elector campaigns for a Lease and runs a term of work while it holds it.
type Elector struct {
	cfg     Config
	leading atomic.Bool
}

// New returns an Elector for cfg. It does not contact the API server.
func New(cfg Config) (*Elector, error) {
	if cfg.Client == nil {
		return nil, errNoClient
	}
	cfg.Lease = cfg.Lease.WithDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Elector{cfg: cfg}, nil
}

// Leading reports whether this replica holds the Lease and runs its term.
func (e *Elector) Leading() bool { return e.leading.Load() }

// Run campaigns for the Lease until ctx ends. While this replica holds it, term runs with a context that ends
// when the Lease is lost or ctx ends; term must stop writing and return then. A replica that loses the Lease
// campaigns again. When ctx ends, the Lease is released only after term has returned, so another replica
// takes over at its next retry instead of after the Lease's duration, and no write follows the release. Run
// returns nil when ctx ends, or an error when leader election cannot be configured.
func (e *Elector) Run(ctx context.Context, term func(context.Context)) error {
	for ctx.Err() == nil {
		if err := e.campaign(ctx, term); err != nil {
			return err
		}
	}
	return nil
}

// campaign runs one leader election until this replica has led and lost, or ctx ends.
func (e *Elector) campaign(ctx context.Context, term func(context.Context)) error {
	// The elector's own context outlives ctx until the term has stopped writing: with ReleaseOnCancel the Lease
	// is released when that context ends, and no write may follow the release.
	leCtx, leCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer leCancel()
	var inTerm sync.Mutex // held while leading
	le, err := leaderelection.NewLeaderElector(e.electionConfig(func(lctx context.Context) {
		inTerm.Lock()
		defer inTerm.Unlock()
		e.lead(ctx, lctx, term)
	}))
	if err != nil {
		return fmt.Errorf("leader election for Lease %s: %w", e.cfg.Lease, err)
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
	inTerm.Lock() // the term has stopped writing (or never started, and will find its context ended)
	inTerm.Unlock()
	leCancel() // release the Lease
	<-done
	if !e.leading.Load() && ctx.Err() == nil {
		e.cfg.Logger.Warn(e.cfg.Role+" lost the lease; campaigning again", "identity", e.cfg.Lease.Identity)
	}
	return nil
}

// lead runs one term under the elector's context lctx; the term also ends when the caller's ctx does.
func (e *Elector) lead(ctx, lctx context.Context, term func(context.Context)) {
	tctx, cancel := context.WithCancel(lctx)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	if ctx.Err() != nil || lctx.Err() != nil { // campaign has moved on to releasing the Lease
		return
	}
	e.setLeading(true)
	e.cfg.Logger.Info(e.cfg.Role+" is the leader", "identity", e.cfg.Lease.Identity, "lease", e.cfg.Lease.String())
	term(tctx)
	e.setLeading(false)
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

func (e *Elector) electionConfig(onLead func(context.Context)) leaderelection.LeaderElectionConfig {
	l := e.cfg.Lease
	return leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name},
			Client:     e.cfg.Client,
			LockConfig: resourcelock.ResourceLockConfig{Identity: l.Identity},
		},
		LeaseDuration:   l.Duration,
		RenewDeadline:   l.RenewDeadline,
		RetryPeriod:     l.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            l.String(),
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: onLead,
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != l.Identity {
					e.cfg.Logger.Info(e.cfg.Role+" follows another replica", "identity", l.Identity, "leader", id)
				}
			},
		},
	}
}

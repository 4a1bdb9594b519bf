package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Config configures one leader election. Every field is required.
type Config struct {
	// Client reaches the Lease.
	Client coordinationv1.LeasesGetter
	// Lease locates the Lease and carries the timings, as LeaseConfig.WithDefaults returns them.
	Lease LeaseConfig
	// Lead is the work of one term. Its context ends when the Lease is lost or Run's context ends; Lead must
	// then return promptly, and the Lease is released only after it has.
	Lead func(ctx context.Context)
	// Logger receives leadership changes.
	Logger *slog.Logger
}

// Run campaigns for the Lease and runs Lead while it holds it, campaigning again after each term, until ctx
// ends. It returns nil when ctx ends and an error only when the election cannot be set up.
func Run(ctx context.Context, cfg Config) error {
	l := cfg.Lease
	if cfg.Client == nil || cfg.Lead == nil || cfg.Logger == nil || l.LeaseNamespace == "" || l.LeaseName == "" ||
		l.Identity == "" {
		return errors.New("leader: a client, a Lease namespace and name, an identity, work and a logger are required")
	}
	for ctx.Err() == nil {
		if err := campaign(ctx, cfg); err != nil {
			return err
		}
	}
	return nil
}

// campaign runs one election until this replica has led and lost, or ctx ends. The elector's context outlives
// ctx until the term has returned: with ReleaseOnCancel the Lease is released when that context ends, and no
// write may follow the release.
func campaign(ctx context.Context, cfg Config) error {
	leCtx, leCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer leCancel()
	var term sync.Mutex // held while leading
	l := cfg.Lease
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: l.LeaseNamespace, Name: l.LeaseName},
			Client:     cfg.Client,
			LockConfig: resourcelock.ResourceLockConfig{Identity: l.Identity},
		},
		LeaseDuration:   l.LeaseDuration,
		RenewDeadline:   l.RenewDeadline,
		RetryPeriod:     l.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            l.String(),
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
				cfg.Logger.Info("leading", "lease", l.String(), "identity", l.Identity)
				cfg.Lead(tctx)
				cfg.Logger.Info("no longer leading", "lease", l.String())
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return fmt.Errorf("leader: Lease %s: %w", l, err)
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
	term.Lock() // the term has returned (or never started, and will find its context ended)
	term.Unlock()
	leCancel()
	<-done
	return nil
}

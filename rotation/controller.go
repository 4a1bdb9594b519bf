package rotation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/internal/leader"
)

// Config configures a Controller: the `rotation:` section of meshca's configuration.
type Config struct {
	// StateFile is the rotation's state for a single meshca, changed by `meshca rotation` or the admin API.
	// Exactly one of StateFile and ConfigMap is required.
	StateFile string `json:"stateFile,omitempty"`
	// ConfigMap, in a cluster, is the ConfigMap holding the state (in LeaseNamespace); the replica holding the
	// Lease LeaseName advances it.
	ConfigMap string `json:"configMap,omitempty"`
	// LeaseConfig is the Lease of the replica that advances the rotation (with configMap; leaseName defaults to
	// "meshca-rotation", leaseNamespace is required).
	leader.LeaseConfig
	// PollInterval is how often meshca re-reads the state, writes its progress and tries the gate. Default 5s.
	PollInterval time.Duration `json:"pollInterval,omitempty"`
	// MaxIdentities caps the identities tracked (TrackerConfig.MaxIdentities). Default 100000.
	MaxIdentities int `json:"maxIdentities,omitempty"`
	// Manual turns the automatic advance off: every step then waits for `meshca rotation advance`.
	Manual bool `json:"manual,omitempty"`
	// AdminAddr is the rotation admin API's listen address, loopback only. Default 127.0.0.1:15017.
	AdminAddr string `json:"adminAddr,omitempty"`

	// MaxLifetime is issuance.maxTTL (TrackerConfig.MaxLifetime).
	MaxLifetime time.Duration `json:"-"`
	// Started, when set, is TrackerConfig.Started.
	Started time.Time `json:"-"`
	// CASwitch, when set, is the backend that holds the next CA (the file backend's nextDir): start takes the
	// roots from it, and meshca switches the signing CA itself (SigningRoot).
	CASwitch CASwitch `json:"-"`
	// Client reaches the API server (required with ConfigMap); Store, when set, replaces the configured one.
	Client     kubernetes.Interface  `json:"-"`
	Store      Store                 `json:"-"`
	Registerer prometheus.Registerer `json:"-"`
	// Logger receives operational logs, Audit one record per transition; default slog.Default().
	Logger, Audit *slog.Logger     `json:"-"`
	Now           func() time.Time `json:"-"`
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if (c.StateFile == "") == (c.ConfigMap == "") {
		errs = append(errs, errors.New("rotation: set exactly one of rotation.stateFile (a single meshca) and "+
			"rotation.configMap (replicas in a cluster)"))
	}
	if c.ConfigMap != "" {
		errs = append(errs, c.lease().Validate("rotation"))
	}
	if c.PollInterval < 0 || c.MaxIdentities < 0 {
		errs = append(errs, errors.New("rotation.pollInterval and rotation.maxIdentities must not be negative"))
	}
	if err := checkLoopback(c.AdminAddr); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// InCluster reports whether c keeps the state in a ConfigMap (false for nil).
func (c *Config) InCluster() bool { return c != nil && c.ConfigMap != "" }

// lease is the rotation's Lease with its defaults (name meshca-rotation).
func (c *Config) lease() leader.LeaseConfig { return c.LeaseConfig.WithDefaults("meshca-rotation") }

// Controller is a running meshca's side of a rotation: it follows the stored state, adds the phase's roots to
// every trust bundle (ExtraRoots), withdraws the old one (WithdrawnRoots), caps leaf lifetimes (LifetimeCap),
// tracks delivery (Observer), and, while it leads, advances when the gate is open and carries out the
// operators' changes (Do).
type Controller struct {
	cfg     Config
	store   Store
	tracker *Tracker
	state   atomic.Pointer[loaded]
	log     *slog.Logger
	audit   *slog.Logger
	leading atomic.Bool
	elector *leader.Elector // nil for a file
	events  *events         // nil for a file
	forced  prometheus.Counter
	answers atomic.Pointer[answerSet]    // the other replicas' answers at the last report
	peers   atomic.Pointer[peerLaggards] // the other replicas' named laggards at the last report
	mu      sync.Mutex                   // serialises changes made by this replica
}

type loaded struct {
	s                        *State
	extra, published, retire []*x509.Certificate
	signing                  *x509.Certificate // s.SigningRoot parsed
}

// New returns a Controller with the state loaded.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxLifetime <= 0 {
		return nil, errors.New("rotation: the maximum certificate lifetime (issuance.maxTTL) is required")
	}
	c := &Controller{cfg: cfg, log: cfg.Logger, audit: cfg.Audit, store: cfg.Store,
		tracker: NewTracker(TrackerConfig{MaxLifetime: cfg.MaxLifetime, MaxIdentities: cfg.MaxIdentities,
			Started: cfg.Started, Now: cfg.Now}),
		forced: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshca_rotation_forced_transitions_total",
			Help: "Rotation transitions made by this replica past a closed gate (--force)."})}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.audit == nil {
		c.audit = c.log
	}
	if cfg.ConfigMap != "" {
		if cfg.Client == nil {
			return nil, errors.New("rotation: rotation.configMap needs a Kubernetes client (kubernetes: section)")
		}
		lease := cfg.lease()
		c.cfg.Identity = lease.Identity
		if c.store == nil {
			c.store = KubeStore{Client: cfg.Client, Namespace: cfg.LeaseNamespace, Name: cfg.ConfigMap}
		}
		c.elector = leader.NewElector(leader.ElectorConfig{Lease: lease, Client: cfg.Client.CoordinationV1(),
			Role: "rotation controller", Logger: c.log})
		c.events = &events{client: cfg.Client, ns: cfg.LeaseNamespace, name: cfg.ConfigMap, from: lease.Identity,
			log: c.log}
	} else {
		if c.store == nil {
			c.store = FileStore{Path: cfg.StateFile}
		}
		c.leading.Store(true) // a single meshca leads itself
		if c.cfg.Identity == "" {
			c.cfg.Identity = "meshca"
		}
	}
	if err := c.reload(context.Background()); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		if err := errors.Join(cfg.Registerer.Register(&collector{c: c}),
			cfg.Registerer.Register(ProgressCollector(c.Progress))); err != nil {
			return nil, fmt.Errorf("rotation: metrics: %w", err)
		}
		if err := cfg.Registerer.Register(c.forced); err != nil {
			return nil, fmt.Errorf("rotation: metrics: %w", err)
		}
	}
	return c, nil
}

// reload reads the stored state and applies it.
func (c *Controller) reload(ctx context.Context) error {
	s, _, err := c.store.Load(ctx)
	if err != nil {
		return err
	}
	return c.apply(s)
}

func (c *Controller) apply(s *State) error {
	if cur := c.state.Load(); cur != nil && cur.s.Generation == s.Generation && cur.s.Phase == s.Phase &&
		cur.s.Paused == s.Paused {
		return nil
	}
	l := &loaded{s: s}
	var err error
	if l.extra, err = s.ExtraRoots(); err != nil {
		return err
	}
	if l.published, err = s.PublishedRoots(); err != nil {
		return err
	}
	if l.retire, err = s.WithdrawnRoots(); err != nil {
		return err
	}
	if l.signing, err = s.SigningCA(); err != nil {
		return err
	}
	next, _, _ := s.Roots()
	c.tracker.SetTarget(next)
	c.state.Store(l)
	c.log.Info("rotation state", "phase", s.Phase, "generation", s.Generation, "paused", s.Paused)
	return nil
}

// State returns the state in force.
func (c *Controller) State() *State { return c.state.Load().s }

// Leading reports whether this replica may change the state.
func (c *Controller) Leading() bool { return c.leading.Load() }

// ExtraRoots is ca.Config.ExtraRoots: the roots the current phase adds to every response's trust bundle.
func (c *Controller) ExtraRoots(context.Context) ([]*x509.Certificate, error) {
	return c.state.Load().extra, nil
}

// PublishedRoots returns the roots the current phase adds to the published bundles.
func (c *Controller) PublishedRoots(context.Context) ([]*x509.Certificate, error) {
	return c.state.Load().published, nil
}

// WithdrawnRoots is ca.Config.WithdrawnRoots: the old root while retiring.
func (c *Controller) WithdrawnRoots() []*x509.Certificate { return c.state.Load().retire }

// LifetimeCap is ca.Config.LifetimeCap: the rotation's maximum leaf lifetime from staged until idle.
func (c *Controller) LifetimeCap() time.Duration { return c.state.Load().s.LifetimeCap() }

// Progress reports on the state in force: this replica's records, with the laggards that another replica
// holds a later record for (as answered at this replica's last report) counted as done, and the laggards the
// other replicas name added to those it names (peers.go).
func (c *Controller) Progress() *Progress {
	return withPeers(c.progressOf(c.State()), c.peers.Load())
}

// progressOf is Progress for state s.
func (c *Controller) progressOf(s *State) *Progress {
	if a := c.answers.Load(); a != nil && a.generation == s.Generation {
		return c.tracker.progress(s.Generation, s.Phase, a.set)
	}
	return c.tracker.Progress(s.Generation, s.Phase)
}

// Do carries out ch on the stored state, if this replica leads: the gates read this replica's progress.
// ch.Generation, when set, must be the stored generation (ErrConflict otherwise), so that an operator's
// change meant for one phase never applies to the next.
func (c *Controller) Do(ctx context.Context, ch Change, generation uint64) (*State, Transition, error) {
	if !c.Leading() {
		return nil, Transition{}, fmt.Errorf("%w: run the command against the Lease holder (%s)", ErrNotLeader,
			c.cfg.lease().String())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch.By == "" {
		ch.By = c.cfg.Identity
	}
	var t Transition
	s, err := Update(ctx, c.store, func(s *State) error {
		if generation != 0 && s.Generation != generation {
			return fmt.Errorf("%w: the state is at generation %d, not %d; look at it again", ErrConflict,
				s.Generation, generation)
		}
		if err := c.apply(s); err != nil { // the tracker follows the stored state before the gate reads it
			return err
		}
		if err := c.checkSwitch(ctx, s, &ch); err != nil {
			return err
		}
		others := c.replicasGate(ctx, s, ch)
		if others != nil && (!ch.Force || !errors.Is(others, ErrGateClosed)) {
			return others
		}
		var err error
		p := c.withAnswers(ctx, s, c.tracker.Progress(s.Generation, s.Phase))
		if t, err = s.Apply(ch, p, c.cfg.Now()); err != nil {
			return err
		}
		if others != nil { // forced past the other replicas' gate
			t.Forced, s.History[len(s.History)-1].Forced = true, true
		}
		return nil
	})
	if err != nil {
		return nil, Transition{}, err
	}
	if err := c.apply(s); err != nil {
		return nil, Transition{}, err
	}
	c.record(ctx, t)
	return s, t, nil
}

// record writes the audit record and the Event of a transition, and counts a forced one.
func (c *Controller) record(ctx context.Context, t Transition) {
	if t.Forced {
		c.forced.Inc()
	}
	c.audit.Info("rotation transition", "action", t.Action, "from", t.From, "to", t.To,
		"generation", t.Generation, "forced", t.Forced, "reason", t.Reason, "by", t.By)
	if c.events != nil {
		c.events.emit(ctx, t)
	}
}

// Refresh re-reads the state, advances it when this replica leads, the rotation is automatic and not paused,
// and the gate is open, and (for a state file) writes the progress file for the command line.
func (c *Controller) Refresh(ctx context.Context) error {
	if err := c.reload(ctx); err != nil {
		return err
	}
	s := c.State()
	if c.cfg.Client != nil && c.cfg.ConfigMap != "" {
		if err := c.report(ctx, s); err != nil {
			c.log.Warn("rotation: this replica's report was not written; the leader's gates stay closed",
				"error", err)
		}
	}
	if !c.cfg.Manual && c.Leading() && s.Phase != PhaseIdle && !s.Paused &&
		s.Gate(c.withAnswers(ctx, s, c.progressOf(s))) == nil {
		_, t, err := c.Do(ctx, Change{Action: ActionAdvance, Reason: "gate open"}, s.Generation)
		if errors.Is(err, ErrNextCA) {
			c.log.Warn("rotation: the gate is open but the next CA is not usable; fix it to activate", "error", err)
		} else if err != nil && !errors.Is(err, ErrGateClosed) && !errors.Is(err, ErrConflict) {
			return err
		}
		if err == nil {
			c.log.Info("rotation advanced", "from", t.From, "to", t.To, "generation", t.Generation)
		}
	}
	if c.cfg.StateFile != "" {
		return WriteProgress(ProgressPath(c.cfg.StateFile), c.Progress())
	}
	return nil
}

// Run refreshes every PollInterval until ctx ends, and in a cluster campaigns for the Lease. A state that
// cannot be read keeps the state in force.
func (c *Controller) Run(ctx context.Context) error {
	if c.elector != nil {
		go func() {
			_ = c.elector.Run(ctx, func(term context.Context) {
				c.leading.Store(true)
				<-term.Done()
				c.mu.Lock() // a change in flight ends before the Lease is released
				c.leading.Store(false)
				c.mu.Unlock()
			})
		}()
	}
	tick := time.NewTicker(c.cfg.PollInterval)
	defer tick.Stop()
	for {
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("rotation: refresh failed; keeping the state in force", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Observer returns an observer that tells both next (may be nil) and the tracker of every issuance.
func (c *Controller) Observer(next ca.IssuanceObserver) ca.IssuanceObserver {
	return &fanOut{next: next, t: c.tracker}
}

type fanOut struct {
	next ca.IssuanceObserver
	t    *Tracker
}

func (f *fanOut) Observe(id csr.Identity, notBefore, notAfter time.Time) {
	if f.next != nil {
		f.next.Observe(id, notBefore, notAfter)
	}
}

func (f *fanOut) ObserveResult(res *ca.Result) {
	if ro, ok := f.next.(ca.ResultObserver); ok {
		ro.ObserveResult(res)
	}
	f.t.ObserveResult(res)
}

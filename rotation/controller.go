package rotation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/csr"
)

// Config configures a Controller: the `rotation:` section of meshca's configuration.
type Config struct {
	// StateFile is the rotation's state, changed by `meshca rotation prepare|advance|abort`. Required.
	StateFile string `json:"stateFile"`
	// PollInterval is how often meshca re-reads the state and writes its progress. Default 5s.
	PollInterval time.Duration `json:"pollInterval,omitempty"`
	// MaxIdentities caps the identities tracked (TrackerConfig.MaxIdentities). Default 100000.
	MaxIdentities int `json:"maxIdentities,omitempty"`

	// MaxLifetime is issuance.maxTTL (TrackerConfig.MaxLifetime).
	MaxLifetime time.Duration `json:"-"`
	// Started, when set, is TrackerConfig.Started.
	Started    time.Time             `json:"-"`
	Registerer prometheus.Registerer `json:"-"`
	Logger     *slog.Logger          `json:"-"`
	Now        func() time.Time      `json:"-"`
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.StateFile == "" {
		errs = append(errs, errors.New("rotation.stateFile is required: the file `meshca rotation` changes"))
	}
	if c.PollInterval < 0 || c.MaxIdentities < 0 {
		errs = append(errs, errors.New("rotation.pollInterval and rotation.maxIdentities must not be negative"))
	}
	return errors.Join(errs...)
}

// Controller is a running meshca's side of a rotation: it follows the state file, adds the phase's roots to
// every trust bundle (ExtraRoots), tracks delivery (Observer) and writes Progress for the command line.
type Controller struct {
	cfg     Config
	tracker *Tracker
	state   atomic.Pointer[loaded]
	log     *slog.Logger
}

type loaded struct {
	s     *State
	extra []*x509.Certificate
}

// New returns a Controller with the state file loaded.
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
	c := &Controller{cfg: cfg, log: cfg.Logger, tracker: NewTracker(TrackerConfig{MaxLifetime: cfg.MaxLifetime,
		MaxIdentities: cfg.MaxIdentities, Started: cfg.Started, Now: cfg.Now})}
	if c.log == nil {
		c.log = slog.Default()
	}
	if err := c.reload(); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		if err := errors.Join(cfg.Registerer.Register(&collector{c: c}),
			cfg.Registerer.Register(ProgressCollector(c.Progress))); err != nil {
			return nil, fmt.Errorf("rotation: metrics: %w", err)
		}
	}
	return c, nil
}

// reload reads the state file and applies it.
func (c *Controller) reload() error {
	s, err := Load(c.cfg.StateFile)
	if err != nil {
		return err
	}
	if cur := c.state.Load(); cur != nil && cur.s.Generation == s.Generation && cur.s.Phase == s.Phase {
		return nil
	}
	extra, err := s.ExtraRoots()
	if err != nil {
		return err
	}
	next, _, _ := s.Roots()
	c.tracker.SetTarget(next)
	c.state.Store(&loaded{s: s, extra: extra})
	c.log.Info("rotation state", "phase", s.Phase, "generation", s.Generation)
	return nil
}

// State returns the state in force.
func (c *Controller) State() *State { return c.state.Load().s }

// ExtraRoots is ca.Config.ExtraRoots: the roots the current phase adds to every trust bundle.
func (c *Controller) ExtraRoots(context.Context) ([]*x509.Certificate, error) {
	return c.state.Load().extra, nil
}

// Progress reports on the state in force.
func (c *Controller) Progress() *Progress {
	s := c.State()
	return c.tracker.Progress(s.Generation, s.Phase)
}

// Refresh re-reads the state file and writes the progress file.
func (c *Controller) Refresh() error {
	if err := c.reload(); err != nil {
		return err
	}
	return WriteProgress(ProgressPath(c.cfg.StateFile), c.Progress())
}

// Run refreshes every PollInterval until ctx ends. A state file that cannot be read keeps the state in force.
func (c *Controller) Run(ctx context.Context) error {
	tick := time.NewTicker(c.cfg.PollInterval)
	defer tick.Stop()
	for {
		if err := c.Refresh(); err != nil {
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

var (
	phaseDesc = prometheus.NewDesc("meshca_rotation_phase", "1 for the root rotation's current phase.",
		[]string{"phase"}, nil)
	genDesc = prometheus.NewDesc("meshca_rotation_generation", "Transitions of the root rotation so far.",
		nil, nil)
	holdersDesc = prometheus.NewDesc("meshca_rotation_workloads",
		"Identities with an unexpired certificate, by whether their last trust bundle held the next root "+
			"(bundle) and whether their leaf chains to it (leaf).", []string{"what", "next_root"}, nil)
	completeDesc = prometheus.NewDesc("meshca_rotation_tracker_complete",
		"1 when the rotation tracker has seen every unexpired certificate.", nil, nil)
	droppedDesc = prometheus.NewDesc("meshca_rotation_untracked_total",
		"Issuances not tracked because rotation.maxIdentities was reached.", nil, nil)
)

// collector computes the rotation metrics at scrape time.
type collector struct{ c *Controller }

func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{phaseDesc, genDesc, holdersDesc, completeDesc, droppedDesc} {
		ch <- d
	}
}

func (m *collector) Collect(ch chan<- prometheus.Metric) {
	p := m.c.Progress()
	for _, ph := range []Phase{PhaseIdle, PhasePrepared, PhaseActivated} {
		ch <- prometheus.MustNewConstMetric(phaseDesc, prometheus.GaugeValue, b2f(ph == p.Phase), string(ph))
	}
	ch <- prometheus.MustNewConstMetric(genDesc, prometheus.GaugeValue, float64(p.Generation))
	for _, v := range []struct {
		what string
		n    int
	}{{"bundle", p.HoldingNext}, {"leaf", p.LeafNext}} {
		ch <- prometheus.MustNewConstMetric(holdersDesc, prometheus.GaugeValue, float64(v.n), v.what, "yes")
		ch <- prometheus.MustNewConstMetric(holdersDesc, prometheus.GaugeValue, float64(p.Holders-v.n), v.what,
			"no")
	}
	ch <- prometheus.MustNewConstMetric(completeDesc, prometheus.GaugeValue, b2f(p.Complete))
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(m.c.tracker.Dropped()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

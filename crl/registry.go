package crl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// RegistryConfig configures a Registry. Every field but Store has a default.
type RegistryConfig struct {
	// Store persists the state: a *FileStore for one instance, crl/kubestore for replicas.
	Store Store `json:"-"`
	// CRLLifetime is the time from a CRL's thisUpdate to its nextUpdate. Default 24h.
	CRLLifetime time.Duration `json:"crlLifetime,omitempty"`
	// RefreshAfter is the age at which a CRL is re-issued even without a new revocation. Default half of
	// CRLLifetime, so a CRL is always replaced long before proxies would refuse it.
	RefreshAfter time.Duration `json:"refreshAfter,omitempty"`
	// Backdate moves thisUpdate into the past so that nodes whose clocks lag do not see a CRL that is not yet
	// valid (which fails every handshake under it). Default 1m.
	Backdate time.Duration `json:"backdate,omitempty"`
	// FlushInterval is how often recorded issuances are written to the store. Default 5s.
	FlushInterval time.Duration `json:"flushInterval,omitempty"`
	// MaxInventory bounds the persisted inventory of issued certificates; beyond it, the records that expire
	// soonest are dropped. Default 20000 (about 1 MiB, the size limit of a Kubernetes Secret, compressed).
	MaxInventory int `json:"maxInventory,omitempty"`
	// MaxPending bounds the issuances buffered between flushes. Default 10000.
	MaxPending int `json:"maxPending,omitempty"`
	// MarkRetention is how long a revocation by identity keeps revoking that identity's certificates issued
	// before it that reach the inventory late (another replica's unflushed records). Default 1h.
	MarkRetention time.Duration `json:"markRetention,omitempty"`
	// UnknownExpiry is how long an entry is kept when the revoked certificate's notAfter is unknown (revoked
	// by serial, not in the inventory, no notAfter given). Default 90 days.
	UnknownExpiry time.Duration `json:"unknownExpiry,omitempty"`

	// Clock returns the current time; default time.Now.
	Clock func() time.Time `json:"-"`
	// Logger receives revocations and store errors; default slog.Default().
	Logger *slog.Logger `json:"-"`
	// Metrics receives the revocation counters; default unregistered metrics.
	Metrics *Metrics `json:"-"`
}

// Validate reports every problem with c at once. It has no side effects.
func (c *RegistryConfig) Validate() error {
	var errs []error
	if c.CRLLifetime < 0 || c.RefreshAfter < 0 || c.Backdate < 0 || c.FlushInterval < 0 || c.MarkRetention < 0 ||
		c.UnknownExpiry < 0 || c.MaxInventory < 0 || c.MaxPending < 0 {
		errs = append(errs, errors.New("crl: durations and sizes must not be negative"))
	}
	d := *c
	d.setDefaults()
	if d.CRLLifetime < time.Minute {
		errs = append(errs, fmt.Errorf("crl: crlLifetime %s is shorter than a minute", d.CRLLifetime))
	}
	if d.RefreshAfter >= d.CRLLifetime {
		errs = append(errs, fmt.Errorf("crl: refreshAfter (%s) must be shorter than crlLifetime (%s)",
			d.RefreshAfter, d.CRLLifetime))
	}
	if d.Backdate > time.Hour {
		errs = append(errs, fmt.Errorf("crl: backdate %s is longer than an hour", d.Backdate))
	}
	return errors.Join(errs...)
}

func (c *RegistryConfig) setDefaults() {
	if c.CRLLifetime == 0 {
		c.CRLLifetime = 24 * time.Hour
	}
	if c.RefreshAfter == 0 {
		c.RefreshAfter = c.CRLLifetime / 2
	}
	if c.Backdate == 0 {
		c.Backdate = time.Minute
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 5 * time.Second
	}
	if c.MaxInventory == 0 {
		c.MaxInventory = 20000
	}
	if c.MaxPending == 0 {
		c.MaxPending = 10000
	}
	if c.MarkRetention == 0 {
		c.MarkRetention = time.Hour
	}
	if c.UnknownExpiry == 0 {
		c.UnknownExpiry = 90 * 24 * time.Hour
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Registry is the revocation state of the CAs meshca signs for: revoked certificates, the inventory of issued
// certificates per identity, quarantines, and the numbering of their CRLs. Reads (Quarantined, Revoked) work
// on an in-memory snapshot and never touch the store; Record only appends to a bounded buffer that Run
// flushes. Changes go through the Store, so replicas sharing a Kubernetes store agree.
type Registry struct {
	cfg     RegistryConfig
	m       *Metrics
	snap    atomic.Pointer[snapshot]
	changed notifier

	mu      sync.Mutex // guards pending and gap
	pending []Issuance
	gap     time.Time // latest NotAfter of records dropped from the buffer

	writeMu sync.Mutex // serialises this replica's updates (other replicas: the store's concurrency control)

	cacheMu sync.Mutex
	cache   map[CAID]*CRL // last CRL signed per CA
}

// NewRegistry loads the state from cfg.Store.
func NewRegistry(ctx context.Context, cfg RegistryConfig) (*Registry, error) {
	if cfg.Store == nil {
		return nil, errors.New("crl: the registry needs a store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	r := &Registry{cfg: cfg, m: cfg.Metrics, cache: map[CAID]*CRL{}}
	if r.m == nil {
		r.m, _ = NewMetrics(nil)
	}
	st, err := cfg.Store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("crl: loading the revocation state: %w", err)
	}
	r.install(st)
	return r, nil
}

// Changed returns a channel that is closed at the next change of the state, by this replica or (with a store
// that notifies) another one.
func (r *Registry) Changed() <-chan struct{} { return r.changed.wait() }

// Run flushes recorded issuances every FlushInterval and follows changes other replicas make to the store
// (when it notifies), until ctx ends; then it flushes once more and returns nil.
func (r *Registry) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.FlushInterval)
	defer t.Stop()
	var storeChanged func() <-chan struct{}
	if n, ok := r.cfg.Store.(Notifier); ok {
		storeChanged = n.Changed
	}
	for {
		var sc <-chan struct{}
		if storeChanged != nil {
			sc = storeChanged()
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := r.Flush(fctx); err != nil {
				r.cfg.Logger.Error("issued certificates not saved at shutdown", "error", err)
			}
			return nil
		case <-t.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Error("saving issued certificates failed; they stay buffered", "error", err)
			}
		case <-sc:
			if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Error("reading the revocation state failed", "error", err)
			}
		}
	}
}

// Notifier is implemented by stores that other processes write too (crl/kubestore).
type Notifier interface {
	// Changed returns a channel that is closed when the stored state changes.
	Changed() <-chan struct{}
}

// Sync reads the store now and takes in changes other replicas made.
func (r *Registry) Sync(ctx context.Context) error {
	st, err := r.cfg.Store.Load(ctx)
	if err != nil {
		return fmt.Errorf("crl: loading the revocation state: %w", err)
	}
	r.install(st)
	return nil
}

// Flush writes the buffered issuances to the store, and prunes what expired.
func (r *Registry) Flush(ctx context.Context) error {
	_, err := r.update(ctx, func(*State, time.Time) (bool, error) { return false, nil })
	return err
}

// Record adds an issued certificate to the inventory. It is meant for the signing path: it checks the record,
// appends it to a bounded buffer and returns; Run writes the buffer to the store. When the buffer is full the
// record is dropped and counted, and revocations by identity report that they may be incomplete.
func (r *Registry) Record(rec Issuance) error {
	if err := checkSerial(rec.Serial); err != nil {
		return fmt.Errorf("crl: %w: %v", ErrInvalidRequest, err)
	}
	if err := checkRecord(rec.CA, rec.Identity, false); err != nil {
		return fmt.Errorf("crl: %w: %v", ErrInvalidRequest, err)
	}
	if rec.IssuedAt.IsZero() {
		rec.IssuedAt = r.cfg.Clock()
	}
	rec.IssuedAt, rec.NotAfter = seconds(rec.IssuedAt), seconds(rec.NotAfter)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) >= r.cfg.MaxPending {
		r.gap = later(r.gap, rec.NotAfter)
		r.m.dropped.Inc()
		return nil
	}
	r.pending = append(r.pending, rec)
	return nil
}

// Quarantined reports whether identity may get no new certificate at now, and until when.
func (r *Registry) Quarantined(identity string, now time.Time) (until time.Time, ok bool) {
	until, ok = r.snap.Load().state.Quarantine[identity]
	if !ok || !now.Before(until) {
		return time.Time{}, false
	}
	return until, true
}

// Revoked returns the entry of the certificate with serial issued by ca, if it is revoked.
func (r *Registry) Revoked(ca CAID, serial *big.Int) (Entry, bool) {
	if serial == nil {
		return Entry{}, false
	}
	s := r.snap.Load()
	i, ok := s.revoked[entryKey(ca, serial)]
	if !ok {
		return Entry{}, false
	}
	e := s.state.Revoked[i]
	e.Serial = new(big.Int).Set(e.Serial)
	return e, true
}

// Snapshot returns a copy of the current state (for listings; the Registry's own methods are cheaper).
func (r *Registry) Snapshot() *State { return r.snap.Load().state.Clone() }

// snapshot is an immutable state with its indexes.
type snapshot struct {
	state   *State
	revoked map[string]int   // entryKey → index in state.Revoked
	issued  map[string][]int // identity → indexes in state.Issued
}

func (r *Registry) install(st *State) {
	if old := r.snap.Load(); old != nil && old.state.Revision == st.Revision && st.Revision != "" {
		return
	}
	s := &snapshot{state: st, revoked: make(map[string]int, len(st.Revoked)), issued: map[string][]int{}}
	for i, e := range st.Revoked {
		s.revoked[entryKey(e.CA, e.Serial)] = i
	}
	for i, rec := range st.Issued {
		s.issued[rec.Identity] = append(s.issued[rec.Identity], i)
	}
	r.snap.Store(s)
	r.m.inventory.Set(float64(len(st.Issued)))
	r.changed.notify()
}

// update runs op in a store update, together with merging the buffered issuances and pruning. It returns the
// state as stored.
func (r *Registry) update(ctx context.Context, op func(s *State, now time.Time) (bool, error)) (*State, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.Lock()
	pending, gap := r.pending, r.gap
	r.pending, r.gap = nil, time.Time{}
	r.mu.Unlock()
	var added []Entry // revocations the last attempt made by merging; counted once it is stored
	st, err := r.cfg.Store.Update(ctx, func(s *State) (bool, error) {
		now := seconds(r.cfg.Clock())
		var changed bool
		added, changed = r.merge(s, pending, gap, now)
		opChanged, err := op(s, now)
		if err != nil {
			return false, err
		}
		return r.prune(s, now) || changed || opChanged, nil
	})
	if err != nil {
		r.mu.Lock()
		room := max(r.cfg.MaxPending-len(r.pending), 0)
		keep := pending[:min(len(pending), room)]
		for _, rec := range pending[len(keep):] {
			gap = later(gap, rec.NotAfter)
			r.m.dropped.Inc()
		}
		r.pending = append(slices.Clone(keep), r.pending...)
		r.gap = later(r.gap, gap)
		r.mu.Unlock()
		return nil, err
	}
	for _, e := range added {
		r.m.revocations.WithLabelValues(e.Reason.String()).Inc()
		r.cfg.Logger.Warn("certificate revoked: issued before its identity was revoked", "serial", e.Serial.Text(16),
			"ca", e.CA, "identity", bounded(e.Identity), "reason", e.Reason.String())
	}
	r.install(st)
	return st, nil
}

func bounded(s string) string {
	if len(s) > 256 {
		return s[:256] + "…"
	}
	return s
}

func seconds(t time.Time) time.Time { return t.Truncate(time.Second).UTC() }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// notifier closes a channel at each notify: a broadcast to any number of waiters.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

package expiry

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshca/meshca/csr"
	"github.com/prometheus/client_golang/prometheus"
)

// TrackerConfig configures a Tracker. The zero value of every field has a default.
type TrackerConfig struct {
	// OverdueAt is the fraction of a certificate's life after which an identity that has not been issued a
	// newer certificate counts as not renewed. istio-agent renews at half of the life (SECRET_GRACE_PERIOD_RATIO
	// 0.5, with a little jitter), so the default 0.6 leaves a margin for retries. Between 0 and 1.
	OverdueAt float64 `json:"overdueAt,omitempty"`
	// Grace is how long an identity whose latest certificate has expired stays tracked (and keeps its series)
	// before it is dropped. Default 1h.
	Grace time.Duration `json:"grace,omitempty"`
	// MaxIdentities caps the identities tracked, and so the per-identity series. Issuances for identities past
	// the cap are counted in meshca_identity_series_dropped_total and not tracked. Default 10000.
	MaxIdentities int `json:"maxIdentities,omitempty"`

	// Registerer, when set, receives the tracker's collector.
	Registerer prometheus.Registerer `json:"-"`
	// Now is the clock; default time.Now.
	Now func() time.Time `json:"-"`
}

// Validate reports every problem with c at once. It has no side effects.
func (c *TrackerConfig) Validate() error {
	var errs []error
	if c.OverdueAt < 0 || c.OverdueAt > 1 || math.IsNaN(c.OverdueAt) {
		errs = append(errs, fmt.Errorf("expiry: overdueAt %v is not a fraction of a certificate's life: "+
			"set it between 0 and 1 (0 for the default 0.6)", c.OverdueAt))
	}
	if c.Grace < 0 {
		errs = append(errs, fmt.Errorf("expiry: grace %s is negative", c.Grace))
	}
	if c.MaxIdentities < 0 {
		errs = append(errs, fmt.Errorf("expiry: maxIdentities %d is negative: set a positive cap, or 0 for the "+
			"default 10000", c.MaxIdentities))
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every unset setting at its default: OverdueAt 0.6, Grace 1h, MaxIdentities
// 10000 (for meshca config print --defaults).
func (c TrackerConfig) WithDefaults() TrackerConfig {
	if c.OverdueAt == 0 {
		c.OverdueAt = 0.6
	}
	if c.Grace == 0 {
		c.Grace = time.Hour
	}
	if c.MaxIdentities == 0 {
		c.MaxIdentities = 10000
	}
	return c
}

const trackerShards = 32

// Tracker records, per workload identity, the latest certificate meshca issued to it: when it was issued,
// when it expires and when it is overdue for renewal. It exports these at scrape time. Each replica tracks
// what it issued; queries aggregate replicas with max by (trust_domain, namespace, service_account). It is
// safe for concurrent use.
type Tracker struct {
	overdueAt float64
	grace     time.Duration
	max       int64
	now       func() time.Time
	seed      maphash.Seed
	shards    [trackerShards]trackerShard
	count     atomic.Int64
	lastSweep atomic.Int64 // Unix nanoseconds of the last sweepWhenFull
	dropped   prometheus.Counter
}

type trackerShard struct {
	mu sync.RWMutex
	m  map[csr.Identity]*trackedCert
}

// trackedCert holds Unix seconds. The fields are updated together under the shard's read lock; a scrape
// that races an issuance for the same identity may pair the new expiry with the old issuance time for
// one scrape, which is harmless for gauges.
type trackedCert struct {
	issued, notAfter, deadline atomic.Int64
}

// IdentityState is what a Tracker knows of one identity.
type IdentityState struct {
	Identity csr.Identity
	// Issued is when meshca issued the latest certificate; NotAfter when that certificate expires.
	Issued, NotAfter time.Time
	// RenewBy is when the identity counts as not renewed: the certificate's start (issuance, or notBefore if
	// later) plus OverdueAt of its life.
	RenewBy time.Time
}

// NewTracker returns an empty Tracker and registers its collector on cfg.Registerer.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	t := &Tracker{overdueAt: cfg.OverdueAt, grace: cfg.Grace, max: int64(cfg.MaxIdentities), now: cfg.Now,
		seed: maphash.MakeSeed()}
	if t.now == nil {
		t.now = time.Now
	}
	for i := range t.shards {
		t.shards[i].m = map[csr.Identity]*trackedCert{}
	}
	t.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "meshca_identity_series_dropped_total",
		Help: "Issuances not tracked per identity because maxIdentities identities were already tracked."})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(trackerCollector{t}); err != nil {
			return nil, fmt.Errorf("expiry: registering the identity tracker's metrics: %w", err)
		}
	}
	return t, nil
}

// Observe records that id was just issued a certificate valid from notBefore to notAfter. It is meant for the
// issuance path: after an identity's first certificate it takes a shard read lock and a few atomic stores,
// and allocates nothing.
func (t *Tracker) Observe(id csr.Identity, notBefore, notAfter time.Time) {
	t.ObserveAt(id, t.now(), notBefore, notAfter)
}

// ObserveAt is Observe for an issuance at a known time, e.g. one replayed from a store at start-up. An
// observation older than what the tracker holds for id is ignored.
func (t *Tracker) ObserveAt(id csr.Identity, issued, notBefore, notAfter time.Time) {
	start := issued
	if notBefore.After(start) {
		start = notBefore
	}
	life := notAfter.Sub(start)
	if life < 0 {
		life = 0
	}
	deadline := start.Add(time.Duration(float64(life) * t.overdueAt)).Unix()
	s := &t.shards[t.shardOf(id)]
	s.mu.RLock()
	e := s.m[id]
	if e != nil {
		e.set(issued.Unix(), notAfter.Unix(), deadline)
		s.mu.RUnlock()
		return
	}
	s.mu.RUnlock()
	if t.count.Load() >= t.max {
		t.sweepWhenFull()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e = s.m[id]; e == nil {
		if t.count.Load() >= t.max {
			t.dropped.Inc()
			return
		}
		e = &trackedCert{}
		id = csr.Identity{TrustDomain: strings.Clone(id.TrustDomain), Namespace: strings.Clone(id.Namespace),
			ServiceAccount: strings.Clone(id.ServiceAccount)} // keep no caller buffer alive
		s.m[id] = e
		t.count.Add(1)
	}
	e.set(issued.Unix(), notAfter.Unix(), deadline)
}

// sweepWhenFull drops expired identities from every shard, at most once a second, so that a full tracker
// makes room without scanning every identity on each refused issuance.
func (t *Tracker) sweepWhenFull() {
	now := t.now()
	ns, last := now.UnixNano(), t.lastSweep.Load()
	if ns >= last && ns-last < int64(time.Second) {
		return // swept within the last second
	}
	if !t.lastSweep.CompareAndSwap(last, ns) {
		return // another goroutine is sweeping
	}
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		t.sweepLocked(s, now)
		s.mu.Unlock()
	}
}

// set stores a newer issuance; an older one is ignored.
func (e *trackedCert) set(issued, notAfter, deadline int64) {
	if e.issued.Load() > issued {
		return
	}
	e.issued.Store(issued)
	e.notAfter.Store(notAfter)
	e.deadline.Store(deadline)
}

// Lookup returns what the tracker holds for id.
func (t *Tracker) Lookup(id csr.Identity) (IdentityState, bool) {
	s := &t.shards[t.shardOf(id)]
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.m[id]
	if !ok {
		return IdentityState{}, false
	}
	return e.state(id), true
}

// Len returns the number of identities tracked.
func (t *Tracker) Len() int { return int(t.count.Load()) }

func (e *trackedCert) state(id csr.Identity) IdentityState {
	return IdentityState{Identity: id, Issued: time.Unix(e.issued.Load(), 0).UTC(),
		NotAfter: time.Unix(e.notAfter.Load(), 0).UTC(), RenewBy: time.Unix(e.deadline.Load(), 0).UTC()}
}

func (t *Tracker) shardOf(id csr.Identity) int {
	h := maphash.String(t.seed, id.Namespace) ^ maphash.String(t.seed, id.ServiceAccount)*31
	return int(h % trackerShards)
}

// sweepLocked drops the identities of s whose certificate expired more than Grace before now; the caller
// holds s.mu. It returns how many it dropped.
func (t *Tracker) sweepLocked(s *trackerShard, now time.Time) int {
	cutoff := now.Add(-t.grace).Unix()
	n := 0
	for id, e := range s.m {
		if e.notAfter.Load() < cutoff {
			delete(s.m, id)
			n++
		}
	}
	t.count.Add(int64(-n))
	return n
}

// Identities returns every tracked identity, first dropping those expired for longer than Grace.
func (t *Tracker) Identities() []IdentityState {
	now := t.now()
	var out []IdentityState
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		t.sweepLocked(s, now)
		for id, e := range s.m {
			out = append(out, e.state(id))
		}
		s.mu.Unlock()
	}
	return out
}

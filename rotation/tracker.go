package rotation

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/csr"
)

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	// MaxLifetime is the longest lifetime meshca issues (issuance.maxTTL): after running that long, the
	// tracker has seen every unexpired certificate. Required.
	MaxLifetime time.Duration
	// MaxIdentities caps the identities tracked (about 120 bytes each). An issuance past the cap is not
	// tracked, and the tracker counts as incomplete until that certificate expires. Default 100000.
	MaxIdentities int
	// Started is when the tracker's records begin; default its creation. Set it earlier only when every
	// unexpired certificate since then has been observed.
	Started time.Time
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Tracker records per identity what the latest certificate meshca issued it carried: when the leaf expires,
// whether its trust bundle held the rotation's next root, whether the leaf chains to that root. It is a
// ca.ResultObserver, cheap on the request path, and safe for concurrent use.
type Tracker struct {
	maxLife time.Duration
	max     int
	started time.Time
	now     func() time.Time
	target  atomic.Pointer[target]

	mu         sync.Mutex
	m          map[csr.Identity]record
	blindUntil time.Time // an untracked certificate may be valid until then
	dropped    uint64
	lastSweep  int64 // Unix seconds of the last sweep forced by a full map
}

// target is the root a rotation moves to; seq distinguishes successive targets in records.
type target struct {
	seq uint32
	der []byte
	pem []byte
}

// record is 24 bytes beside the map key; with the key and map overhead an identity costs about 120 bytes.
type record struct {
	notAfter  int64
	seq       uint32
	holdsNext bool
	leafNext  bool
}

// NewTracker returns a Tracker for cfg.
func NewTracker(cfg TrackerConfig) *Tracker {
	t := &Tracker{maxLife: cfg.MaxLifetime, max: cfg.MaxIdentities, started: cfg.Started, now: cfg.Now,
		m: map[csr.Identity]record{}}
	if t.max <= 0 {
		t.max = 100000
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.started.IsZero() {
		t.started = t.now()
	}
	t.target.Store(&target{})
	return t
}

// SetTarget sets the root whose delivery is tracked; nil tracks none. Records of earlier targets count as
// not holding it.
func (t *Tracker) SetTarget(next *x509.Certificate) {
	cur := t.target.Load()
	if next == nil {
		if cur.der != nil {
			t.target.Store(&target{seq: cur.seq + 1})
		}
		return
	}
	if bytes.Equal(cur.der, next.Raw) {
		return
	}
	t.target.Store(&target{seq: cur.seq + 1, der: next.Raw,
		pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: next.Raw})})
}

// Observe implements ca.IssuanceObserver; the Tracker records in ObserveResult.
func (t *Tracker) Observe(csr.Identity, time.Time, time.Time) {}

// ObserveResult records the bundle and chain res delivered to its identity.
func (t *Tracker) ObserveResult(res *ca.Result) {
	if len(res.Chain) == 0 {
		return
	}
	tg := t.target.Load()
	r := record{notAfter: res.Chain[0].NotAfter.Unix(), seq: tg.seq}
	if tg.der != nil {
		// The bundle is concatenated PEM of canonical encoding: the next root's PEM appears in it verbatim.
		r.holdsNext = bytes.Contains(res.TrustBundle, tg.pem)
		r.leafNext = bytes.Equal(res.Chain[len(res.Chain)-1].Raw, tg.der)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[res.Identity]; !ok && len(t.m) >= t.max {
		// At the cap, sweep at most once a second: a flood of new identities must not cost O(n) each.
		if now := t.now().Unix(); now > t.lastSweep {
			t.lastSweep = now
			t.sweepLocked(now)
		}
		if len(t.m) >= t.max {
			t.dropped++
			if na := res.Chain[0].NotAfter; na.After(t.blindUntil) {
				t.blindUntil = na
			}
			return
		}
	}
	t.m[res.Identity] = r
}

func (t *Tracker) sweepLocked(now int64) {
	for id, r := range t.m {
		if r.notAfter <= now {
			delete(t.m, id)
		}
	}
}

// Progress reports on the current target for a state at generation gen in phase ph, dropping the records of
// expired certificates.
func (t *Tracker) Progress(gen uint64, ph Phase) *Progress {
	now := t.now()
	tg := t.target.Load()
	p := &Progress{Generation: gen, Phase: ph, At: now.UTC()}
	var lag []Laggard
	t.mu.Lock()
	t.sweepLocked(now.Unix())
	for id, r := range t.m {
		p.Holders++
		holds := r.seq == tg.seq && r.holdsNext && tg.der != nil
		leaf := r.seq == tg.seq && r.leafNext && tg.der != nil
		if holds {
			p.HoldingNext++
		}
		if leaf {
			p.LeafNext++
		}
		if (ph == PhasePrepared && !holds) || (ph == PhaseActivated && !leaf) {
			lag = append(lag, Laggard{Identity: id.String(), NotAfter: time.Unix(r.notAfter, 0).UTC()})
		}
	}
	p.CompleteAt = t.started.Add(t.maxLife)
	if t.blindUntil.After(p.CompleteAt) {
		p.CompleteAt = t.blindUntil
	}
	t.mu.Unlock()
	p.CompleteAt = p.CompleteAt.UTC()
	p.Complete = !now.Before(p.CompleteAt)
	sort.Slice(lag, func(i, j int) bool { return lag[i].NotAfter.Before(lag[j].NotAfter) })
	if len(lag) > maxLaggards {
		lag = lag[:maxLaggards]
	}
	p.Laggards = lag
	return p
}

// Dropped returns how many issuances were not tracked because of MaxIdentities.
func (t *Tracker) Dropped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

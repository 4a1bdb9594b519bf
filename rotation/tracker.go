package rotation

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"strings"
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
	// MaxIdentities caps the holders tracked (about 60 bytes each with its name; BENCHMARKS.md). An issuance
	// past the cap is not tracked, and the tracker counts as incomplete until that certificate expires.
	// Default 100000.
	MaxIdentities int
	// Started is when the tracker's records begin; default its creation. Set it earlier only when every
	// unexpired certificate since then has been observed.
	Started time.Time
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Tracker records per holder of a trust bundle (a pod, ztunnel acting for an identity, or an identity when
// the caller sent no pod claims: HolderKind) what the latest certificate meshca issued it carried: when the
// leaf expires, which trust bundle it received and which CA issued the leaf. It is a ca.ResultObserver, cheap
// on the request path, and safe for concurrent use; the records are split over shards with a lock each, so a
// Progress computation holds up an issuance for at most one shard's scan.
type Tracker struct {
	maxLife time.Duration
	max     int64
	started time.Time
	now     func() time.Time
	target  atomic.Pointer[target]

	shards  [nShards]shard
	count   atomic.Int64
	dropped atomic.Uint64
	blind   atomic.Int64 // Unix seconds until which an untracked certificate may be valid

	ns, nodes, bundles *interner
	prefixes           *interner // pod names up to their last dash: the ReplicaSet's name
	cas                caTable
}

const nShards = 64

// target is the root a rotation moves to.
type target struct {
	der []byte
	pem []byte
}

// shard holds some of the records; names are kept in one byte arena per shard (a record is then 24 bytes
// beside its 8-byte key).
type shard struct {
	mu        sync.Mutex
	m         map[uint64]record
	names     []byte
	dead      int   // arena bytes of deleted records
	lastSweep int64 // Unix seconds of the last sweep forced by a full tracker
	_         [24]byte
}

// record is one holder's latest certificate.
type record struct {
	notAfter uint32 // Unix seconds
	renewed  uint32 // Unix seconds of the issuance
	name     uint32 // offset of the name in the shard's arena
	bundle   uint16 // interned trust bundle: its "version"
	ca       uint16 // interned issuing CA
	ns       uint16
	node     uint16
	prefix   uint16 // interned start of the name; the arena holds the rest
	nameLen  uint8
	kind     uint8
}

var kinds = [...]HolderKind{HolderPod, HolderNodeAgent, HolderIdentity}

func kindIndex(k HolderKind) uint8 {
	for i, x := range kinds {
		if x == k {
			return uint8(i)
		}
	}
	return 2
}

// caTable numbers issuing CAs and remembers the root each one's chains ended at.
type caTable struct {
	in    *interner // keyed by the issuing CA's DER
	mu    sync.RWMutex
	names []string
	roots [][]byte
}

func (c *caTable) id(chain []*x509.Certificate) uint16 {
	if len(chain) < 2 {
		return 0
	}
	issuer, root := chain[1], chain[len(chain)-1]
	i := c.in.bytesID(issuer.Raw)
	c.mu.RLock()
	known := int(i) < len(c.names)
	c.mu.RUnlock()
	if i == 0 || known {
		return i
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.names) <= int(i) {
		c.names, c.roots = append(c.names, ""), append(c.roots, nil)
	}
	c.names[i], c.roots[i] = caName(issuer.Subject.CommonName, issuer.Raw), root.Raw
	return i
}

// NewTracker returns a Tracker for cfg.
func NewTracker(cfg TrackerConfig) *Tracker {
	t := &Tracker{maxLife: cfg.MaxLifetime, max: int64(cfg.MaxIdentities), started: cfg.Started, now: cfg.Now,
		ns: newInterner(1 << 15), nodes: newInterner(1 << 15),
		bundles: newInterner(1 << 10), prefixes: newInterner(1 << 15)}
	t.cas = caTable{in: newInterner(1 << 10), names: []string{""}, roots: [][]byte{nil}}
	if t.max <= 0 {
		t.max = 100000
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.started.IsZero() {
		t.started = t.now()
	}
	for i := range t.shards {
		t.shards[i].m = map[uint64]record{}
	}
	t.target.Store(&target{})
	return t
}

// SetTarget sets the root whose delivery is tracked; nil tracks none.
func (t *Tracker) SetTarget(next *x509.Certificate) {
	if next == nil {
		t.target.Store(&target{})
		return
	}
	if bytes.Equal(t.target.Load().der, next.Raw) {
		return
	}
	t.target.Store(&target{der: next.Raw, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: next.Raw})})
}

// Observe implements ca.IssuanceObserver; the Tracker records in ObserveResult.
func (t *Tracker) Observe(csr.Identity, time.Time, time.Time) {}

// ObserveResult records the bundle and chain res delivered to its holder.
func (t *Tracker) ObserveResult(res *ca.Result) {
	if len(res.Chain) == 0 {
		return
	}
	var buf [128]byte
	kind, ns, node, name, material := holderOf(res, buf[:0])
	key := holderKey(material)
	now := t.now().Unix()
	r := record{notAfter: clampUnix(res.Chain[0].NotAfter.Unix()), renewed: clampUnix(now),
		bundle: t.bundles.bytesID(res.TrustBundle), ca: t.cas.id(res.Chain), ns: t.ns.id(ns),
		node: t.nodes.id(node), kind: kindIndex(kind)}
	s := &t.shards[key%nShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[key]
	if ok {
		r.name, r.nameLen, r.prefix = old.name, old.nameLen, old.prefix
		s.m[key] = r
		return
	}
	if t.count.Load() >= t.max {
		// At the cap, sweep this shard at most once a second: a flood of new holders must not cost O(n) each.
		if now > s.lastSweep {
			s.lastSweep = now
			t.sweepLocked(s, now)
		}
		if t.count.Load() >= t.max {
			t.dropped.Add(1)
			for na := res.Chain[0].NotAfter.Unix(); ; {
				cur := t.blind.Load()
				if na <= cur || t.blind.CompareAndSwap(cur, na) {
					break
				}
			}
			return
		}
	}
	if kind == HolderPod {
		// Pods of a ReplicaSet share a name up to the last dash: only the suffix needs room per holder.
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if r.prefix = t.prefixes.id(name[:i+1]); r.prefix != 0 {
				name = name[i+1:]
			}
		}
	}
	if len(name) > maxName {
		name = name[:maxName]
	}
	r.name, r.nameLen = uint32(len(s.names)), uint8(len(name))
	s.names = append(s.names, name...)
	s.m[key] = r
	t.count.Add(1)
}

func clampUnix(s int64) uint32 {
	switch {
	case s < 0:
		return 0
	case s > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(s)
}

// sweepLocked drops the records of expired certificates from s, and compacts its name arena when most of it
// is dead.
func (t *Tracker) sweepLocked(s *shard, now int64) {
	for k, r := range s.m {
		if int64(r.notAfter) <= now {
			delete(s.m, k)
			s.dead += int(r.nameLen)
			t.count.Add(-1)
		}
	}
	t.compactLocked(s)
}

// compactLocked rebuilds s's name arena when most of it is dead.
func (t *Tracker) compactLocked(s *shard) {
	if s.dead < 4096 || s.dead < len(s.names)/2 {
		return
	}
	names := make([]byte, 0, len(s.names)-s.dead)
	for k, r := range s.m {
		off := uint32(len(names))
		names = append(names, s.names[r.name:r.name+uint32(r.nameLen)]...)
		r.name = off
		s.m[k] = r
	}
	s.names, s.dead = names, 0
}

// Dropped returns how many issuances were not tracked because of MaxIdentities.
func (t *Tracker) Dropped() uint64 { return t.dropped.Load() }

// Len returns how many holders the tracker records (some may have expired since the last sweep).
func (t *Tracker) Len() int { return int(t.count.Load()) }

package rotation

import (
	"bytes"
	"cmp"
	"slices"
	"strings"
	"time"
)

// maxLaggards bounds the laggards a Progress names, and the namespaces and nodes it counts them in.
const maxLaggards = 20

// gateOf returns the gate phase ph waits for: none in idle.
func gateOf(ph Phase) string {
	switch ph {
	case PhasePrepared:
		return GateBundle
	case PhaseActivated:
		return GateLeaf
	}
	return ""
}

// nextRenewal is when a holder issued a certificate at renewed, expiring at notAfter, should renew: istio-agent
// and ztunnel renew at half the lifetime. It is overdue after three fifths.
func nextRenewal(renewed, notAfter int64) (next, overdue int64) {
	life := notAfter - renewed
	return renewed + life/2, renewed + life*3/5
}

// scan is one Progress computation's running totals.
type scan struct {
	now        int64
	gate       string
	xgate      string // the gate whose laggards are listed for the other replicas (exchangeGate)
	holds      []bool // per bundle version: holds the next root
	chains     []bool // per CA: chains to the next root
	gates      [2]GateProgress
	ns, node   []int
	nsNames    []string
	nodeNames  []string
	prefixes   []string
	cas        []int
	lag        []Laggard
	refs       []holderRef // xgate's laggards, at most maxExchange
	refOverdue []bool      // per entry of refs: overdue
	coarse     int
	eta, worst [2]int64
	answered   map[string]bool // laggards at xgate another replica answered: done
}

// Progress reports on the current target for a state at generation gen in phase ph, dropping the records of
// expired certificates. It locks one shard at a time.
func (t *Tracker) Progress(gen uint64, ph Phase) *Progress { return t.progress(gen, ph, nil) }

// progress is Progress with the laggards at the exchange gate that another replica answered (answered, by
// holderRef) counted as done: not lagging or overdue, not named or counted by namespace or node, not listed.
func (t *Tracker) progress(gen uint64, ph Phase, answered map[string]bool) *Progress {
	now := t.now()
	tg := t.target.Load()
	sc := &scan{now: now.Unix(), gate: gateOf(ph), xgate: exchangeGate(ph), answered: answered}
	for _, b := range t.bundles.all() {
		sc.holds = append(sc.holds, tg.pem != nil && strings.Contains(b, string(tg.pem)))
	}
	t.cas.mu.RLock()
	for _, r := range t.cas.roots {
		sc.chains = append(sc.chains, tg.der != nil && bytes.Equal(r, tg.der))
	}
	t.cas.mu.RUnlock()
	sc.nsNames, sc.nodeNames, sc.prefixes = t.ns.all(), t.nodes.all(), t.prefixes.all()
	sc.ns, sc.node = make([]int, len(sc.nsNames)), make([]int, len(sc.nodeNames))
	sc.cas = make([]int, len(sc.chains))
	sc.gates[0].Name, sc.gates[1].Name = GateBundle, GateLeaf
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k, r := range s.m {
			if int64(r.notAfter) <= sc.now { // expired: forget it
				delete(s.m, k)
				s.dead += int(r.nameLen)
				t.count.Add(-1)
				continue
			}
			sc.add(s, k, r)
		}
		t.compactLocked(s)
		s.mu.Unlock()
	}
	p := &Progress{Generation: gen, Phase: ph, At: now.UTC(), Holders: sc.gates[0].Holders,
		HoldingNext: sc.gates[0].Done, LeafNext: sc.gates[1].Done, Coarse: sc.coarse}
	p.CompleteAt = t.started.Add(t.maxLife)
	if b := time.Unix(t.blind.Load(), 0); b.After(p.CompleteAt) {
		p.CompleteAt = b
	}
	p.CompleteAt = p.CompleteAt.UTC()
	p.Complete = !now.Before(p.CompleteAt)
	for i := range sc.gates {
		g := &sc.gates[i]
		g.Active = g.Name == sc.gate
		g.ETA, g.Latest = p.At, p.At
		if e := time.Unix(sc.eta[i], 0).UTC(); e.After(g.ETA) {
			g.ETA = e
		}
		if w := time.Unix(sc.worst[i], 0).UTC(); w.After(g.Latest) {
			g.Latest = w
		}
		if !p.Complete {
			g.ETA, g.Latest = later(g.ETA, p.CompleteAt), later(g.Latest, p.CompleteAt)
		}
	}
	p.Gates = sc.gates[:]
	p.Laggards = sc.lag
	p.lagging, p.laggingOverdue = sc.refs, sc.refOverdue
	p.ByNamespace = top(sc.ns, sc.nsNames)
	p.ByNode = top(sc.node, sc.nodeNames)
	t.cas.mu.RLock()
	p.CAs = top(sc.cas, t.cas.names)
	t.cas.mu.RUnlock()
	return p
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// add counts one unexpired record of shard s (locked) with key k.
func (sc *scan) add(s *shard, k uint64, r record) {
	if kinds[r.kind] == HolderIdentity {
		sc.coarse++
	}
	if int(r.ca) < len(sc.cas) {
		sc.cas[r.ca]++
	}
	done := [2]bool{int(r.bundle) < len(sc.holds) && sc.holds[r.bundle],
		int(r.ca) < len(sc.chains) && sc.chains[r.ca]}
	next, overdueAt := nextRenewal(int64(r.renewed), int64(r.notAfter))
	overdue := sc.now > overdueAt
	for i := range sc.gates {
		g := &sc.gates[i]
		g.Holders++
		if done[i] || g.Name == sc.xgate && len(sc.answered) > 0 &&
			sc.answered[holderRef{key: k, renewed: r.renewed}.String()] {
			g.Done++
			continue
		}
		// A laggard resolves when it renews, or at the latest when its certificate expires.
		resolves := max(next, sc.now)
		if overdue {
			g.Overdue++
			resolves = int64(r.notAfter)
		} else {
			g.Lagging++
		}
		sc.eta[i] = max(sc.eta[i], resolves)
		sc.worst[i] = max(sc.worst[i], int64(r.notAfter))
		if g.Name == sc.xgate && len(sc.refs) < maxExchange {
			sc.refs = append(sc.refs, holderRef{key: k, renewed: r.renewed})
			sc.refOverdue = append(sc.refOverdue, overdue)
		}
		if g.Name != sc.gate {
			continue
		}
		if int(r.ns) < len(sc.ns) {
			sc.ns[r.ns]++
		}
		if int(r.node) < len(sc.node) {
			sc.node[r.node]++
		}
		sc.offer(s, k, r, next, overdue)
	}
}

// offer keeps r among the laggards named when it ranks among the first maxLaggards: overdue first, then the
// latest expected renewal (those set the ETA).
func (sc *scan) offer(s *shard, k uint64, r record, next int64, overdue bool) {
	nextT := time.Unix(next, 0).UTC()
	before := func(l Laggard) bool {
		if overdue != l.Overdue {
			return overdue
		}
		return nextT.After(l.NextRenewal)
	}
	if len(sc.lag) == maxLaggards && !before(sc.lag[len(sc.lag)-1]) {
		return
	}
	name := string(s.names[r.name : r.name+uint32(r.nameLen)])
	if int(r.prefix) < len(sc.prefixes) {
		name = sc.prefixes[r.prefix] + name
	}
	l := Laggard{Identity: name, Kind: kinds[r.kind],
		LastRenewal: time.Unix(int64(r.renewed), 0).UTC(), NextRenewal: nextT,
		NotAfter: time.Unix(int64(r.notAfter), 0).UTC(), Overdue: overdue, Bundle: int(r.bundle),
		ref: holderRef{key: k, renewed: r.renewed}}
	if int(r.ns) < len(sc.nsNames) {
		l.Namespace = sc.nsNames[r.ns]
	}
	if int(r.node) < len(sc.nodeNames) {
		l.Node = sc.nodeNames[r.node]
	}
	at, _ := slices.BinarySearchFunc(sc.lag, l, func(a, _ Laggard) int {
		if before(a) {
			return 1
		}
		return -1
	})
	sc.lag = slices.Insert(sc.lag, at, l)
	if len(sc.lag) > maxLaggards {
		sc.lag = sc.lag[:maxLaggards]
	}
}

// top returns the largest counts with their names, at most maxLaggards, largest first.
func top(counts []int, names []string) []Count {
	var out []Count
	for i, n := range counts {
		if n > 0 && i < len(names) {
			name := names[i]
			if name == "" {
				name = "(unknown)"
			}
			out = append(out, Count{Name: name, Count: n})
		}
	}
	slices.SortFunc(out, func(a, b Count) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(out) > maxLaggards {
		out = out[:maxLaggards]
	}
	return out
}

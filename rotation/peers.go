package rotation

import (
	"cmp"
	"slices"
	"sort"
)

// In a cluster each replica keeps the records of the holders that renewed through it. A pod that renews only
// through one replica is known only to that one, so each replica's report carries its view (ReplicaReport:
// named laggards, laggards by namespace and node, leaves by CA, each gate's ETA), and every replica's Progress
// (status, the /rotation page) adds the other current replicas' to its own: laggards named once each with the
// replica that saw them (Laggard.Replica), counts by namespace, node and CA summed, and each gate's ETA the
// latest. The gates' holder counts stay the replica's own (a holder that renewed through two replicas would
// count twice); the gates themselves combine every replica's verdict (replicas.go).

// peerLaggards is the other replicas' view read at this replica's last report, for a generation.
type peerLaggards struct {
	generation               uint64
	list                     []Laggard
	byNamespace, byNode, cas []Count
	gates                    []GateProgress // ETA and Latest: the latest of any replica's
}

// peersOf returns the named laggards of the current reports in others, each tagged with its replica, this
// replica's own left out.
func (c *Controller) peersOf(others map[string]ReplicaReport, s *State) *peerLaggards {
	ids := make([]string, 0, len(others))
	for id := range others {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	pl := &peerLaggards{generation: s.Generation}
	for _, id := range ids {
		r := others[id]
		if id == c.cfg.Identity || !c.current(r, s) {
			continue
		}
		for _, l := range r.Laggards[:min(len(r.Laggards), maxLaggards)] {
			l.Replica = id
			pl.list = append(pl.list, l)
		}
		pl.byNamespace = addCounts(pl.byNamespace, r.ByNamespace)
		pl.byNode = addCounts(pl.byNode, r.ByNode)
		pl.cas = addCounts(pl.cas, r.CAs)
		pl.gates = laterGates(pl.gates, r.Gates)
	}
	return pl
}

// addCounts returns a and b summed by name, largest first (then by name), at most maxLaggards.
func addCounts(a, b []Count) []Count {
	if len(b) == 0 {
		return a
	}
	sum := map[string]int{}
	for _, c := range append(slices.Clone(a), b...) {
		sum[c.Name] += c.Count
	}
	out := make([]Count, 0, len(sum))
	for name, n := range sum {
		out = append(out, Count{Name: name, Count: n})
	}
	slices.SortFunc(out, func(x, y Count) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Name, y.Name))
	})
	return out[:min(len(out), maxLaggards)]
}

// laterGates returns gs with each gate's ETA and Latest moved to those of the same gate in other when later.
func laterGates(gs, other []GateProgress) []GateProgress {
	gs = slices.Clone(gs)
	for _, o := range other {
		i := slices.IndexFunc(gs, func(g GateProgress) bool { return g.Name == o.Name })
		if i < 0 {
			gs = append(gs, GateProgress{Name: o.Name, ETA: o.ETA, Latest: o.Latest})
			continue
		}
		if o.ETA.After(gs[i].ETA) {
			gs[i].ETA = o.ETA
		}
		if o.Latest.After(gs[i].Latest) {
			gs[i].Latest = o.Latest
		}
	}
	return gs
}

// withPeers returns p with the other replicas' view added (peers, when for p's generation): laggards named once
// each (a holder this replica names already is not named again), overdue first and then the latest expected
// renewal as a replica ranks its own, at most maxLaggards per replica; counts by namespace, node and CA summed;
// each gate's ETA and Latest the latest of any replica's.
func withPeers(p *Progress, peers *peerLaggards) *Progress {
	if peers == nil || peers.generation != p.Generation {
		return p
	}
	type name struct {
		kind            HolderKind
		namespace, name string
	}
	seen := map[name]bool{}
	for _, l := range p.Laggards {
		seen[name{l.Kind, l.Namespace, l.Identity}] = true
	}
	q := *p
	q.Laggards = slices.Clone(p.Laggards)
	for _, l := range peers.list {
		if k := (name{l.Kind, l.Namespace, l.Identity}); !seen[k] {
			seen[k] = true
			q.Laggards = append(q.Laggards, l)
		}
	}
	q.ByNamespace = addCounts(p.ByNamespace, peers.byNamespace)
	q.ByNode = addCounts(p.ByNode, peers.byNode)
	q.CAs = addCounts(p.CAs, peers.cas)
	q.Gates = slices.Clone(p.Gates)
	for i := range q.Gates {
		g := &q.Gates[i]
		for _, o := range peers.gates {
			if o.Name != g.Name {
				continue
			}
			if o.ETA.After(g.ETA) {
				g.ETA = o.ETA
			}
			if o.Latest.After(g.Latest) {
				g.Latest = o.Latest
			}
		}
	}
	slices.SortStableFunc(q.Laggards, func(a, b Laggard) int {
		if a.Overdue != b.Overdue {
			if a.Overdue {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.NextRenewal.UnixNano(), a.NextRenewal.UnixNano())
	})
	return &q
}

package rotation

import (
	"cmp"
	"slices"
	"sort"
)

// In a cluster each replica names the laggards of its own records. A pod that renews only through one replica
// is named only by that one, so each replica's report carries its named laggards (ReplicaReport.Laggards),
// and every replica's Progress (status, the /rotation page) names the other replicas' too, with the replica
// that saw them (Laggard.Replica). Counts (gates, by namespace, by node) stay each replica's own: the gates are
// merged by the leader's verdicts (replicas.go), and a holder seen by two replicas would be counted twice.

// peerLaggards are the other replicas' named laggards read at this replica's last report, for a generation.
type peerLaggards struct {
	generation uint64
	list       []Laggard
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
	}
	return pl
}

// withPeers returns p with the other replicas' named laggards added (peers, when for p's generation): a holder
// this replica names already is not named twice; overdue first, then the latest expected renewal, as a
// replica ranks its own, at most maxLaggards per replica.
func withPeers(p *Progress, peers *peerLaggards) *Progress {
	if peers == nil || peers.generation != p.Generation || len(peers.list) == 0 {
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

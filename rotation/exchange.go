package rotation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Replicas track the renewals they serve, so a holder that renewed through replica A still has an older record
// at replica B, which holds B's gate until that record's certificate expires. The full record sets cannot be
// exchanged (100k records of about 60 bytes exceed a ConfigMap's 1 MiB), but the records that matter can: each
// replica lists its active gate's laggards in its report (at most maxExchange, with the time of the record's
// issuance), every replica answers the others' lists with the holders for which it has a later record that has
// what the gate needs, and the leader counts a laggard as done when some replica answered it. A holder's
// latest issuance decides what it holds, so an answer counts only when its record is later than the
// laggard's: the replica that served the latest renewal lists it itself if it lacks what the gate needs, and
// nobody can answer it. A replica whose list was cut at maxExchange keeps its verdict (the gate then waits as
// before); the tail of a rotation, where a few holders hold every gate, always fits.

// maxExchange bounds the laggards a replica lists, and the answers it gives per other replica.
const maxExchange = 256

// holderRef names one holder's record across replicas: its key (holderKey, the same on every replica) and
// when the record's certificate was issued (Unix seconds).
type holderRef struct {
	key     uint64
	renewed uint32
}

// String is the form a report carries: 16 hexadecimal digits of the key, a dot, the issuance time.
func (h holderRef) String() string {
	return fmt.Sprintf("%016x.%d", h.key, h.renewed)
}

var errHolderRef = errors.New("rotation: a holder reference must be <16 hex digits>.<unix seconds>")

// parseHolderRef reads a holderRef's String.
func parseHolderRef(s string) (holderRef, error) {
	k, r, ok := strings.Cut(s, ".")
	if !ok || len(k) != 16 {
		return holderRef{}, errHolderRef
	}
	key, err := strconv.ParseUint(k, 16, 64)
	if err != nil {
		return holderRef{}, errHolderRef
	}
	renewed, err := strconv.ParseUint(r, 10, 32)
	if err != nil || strings.HasPrefix(r, "+") {
		return holderRef{}, errHolderRef
	}
	return holderRef{key: key, renewed: uint32(renewed)}, nil
}

// refStrings formats refs for a report.
func refStrings(refs []holderRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}

// parseRefs reads a report's list, at most maxExchange entries, skipping malformed ones.
func parseRefs(ss []string) []holderRef {
	var out []holderRef
	for _, s := range ss[:min(len(ss), maxExchange)] {
		if r, err := parseHolderRef(s); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// answer returns those of refs, another replica's laggards at gate, for which t holds a later, unexpired
// record that has what gate needs (the next root in its bundle, or a leaf chaining to the next root).
func (t *Tracker) answer(refs []holderRef, gate string) []holderRef {
	tg := t.target.Load()
	if tg.der == nil || (gate != GateBundle && gate != GateLeaf) {
		return nil
	}
	now := t.now().Unix()
	var holds, chains []bool
	for _, b := range t.bundles.all() {
		holds = append(holds, strings.Contains(b, string(tg.pem)))
	}
	t.cas.mu.RLock()
	for _, r := range t.cas.roots {
		chains = append(chains, bytes.Equal(r, tg.der))
	}
	t.cas.mu.RUnlock()
	var out []holderRef
	for _, ref := range refs {
		s := &t.shards[ref.key%nShards]
		s.mu.Lock()
		r, ok := s.m[ref.key]
		s.mu.Unlock()
		if !ok || r.renewed <= ref.renewed || int64(r.notAfter) <= now {
			continue
		}
		if gate == GateBundle && int(r.bundle) < len(holds) && holds[r.bundle] ||
			gate == GateLeaf && int(r.ca) < len(chains) && chains[r.ca] {
			out = append(out, ref)
		}
	}
	return out
}

// exchangeGate is the gate the advance from ph needs: the bundle gate from publishing, the leaf gate from
// activated and retiring (both drop the old root); none otherwise.
func exchangeGate(ph Phase) string {
	switch ph {
	case PhasePublishing:
		return GateBundle
	case PhaseActivated, PhaseRetiring:
		return GateLeaf
	}
	return ""
}

// gateProgress returns p's progress at gate, zero when p has none.
func (p *Progress) gateProgress(gate string) GateProgress {
	for _, g := range p.Gates {
		if g.Name == gate {
			return g
		}
	}
	return GateProgress{}
}

// fill adds to r, this replica's report on s, its laggards and its answers to the other replicas' current
// reports (others, keyed by replica identity).
func (c *Controller) fill(r *ReplicaReport, p *Progress, s *State, others map[string]ReplicaReport) {
	gate := exchangeGate(s.Phase)
	if gate == "" {
		return
	}
	g := p.gateProgress(gate)
	r.Lagging, r.LaggingAll = refStrings(p.lagging), len(p.lagging) == g.Lagging+g.Overdue
	for id, o := range others {
		if id == c.cfg.Identity || !c.current(o, s) {
			continue
		}
		r.Answers = append(r.Answers, refStrings(c.tracker.answer(parseRefs(o.Lagging), gate))...)
	}
}

// current reports whether r is a live report on state s.
func (c *Controller) current(r ReplicaReport, s *State) bool {
	return r.Generation == s.Generation && c.cfg.Now().Sub(r.At) <= c.staleAfter()
}

// staleAfter is how old a replica's report may be before the replica counts as stopped.
func (c *Controller) staleAfter() time.Duration {
	return 3*c.cfg.PollInterval + c.cfg.lease().LeaseDuration
}

// answered returns the holder references the current reports in reports answer for state s.
func (c *Controller) answered(reports map[string]ReplicaReport, s *State) map[string]bool {
	set := map[string]bool{}
	for _, r := range reports {
		if !c.current(r, s) {
			continue
		}
		for _, a := range r.Answers[:min(len(r.Answers), maxExchange*len(reports))] {
			set[a] = true
		}
	}
	return set
}

// allAnswered reports whether the only thing closing r's gate is laggards that a later record, at another
// replica (set) or at this one, shows to have what the gate needs.
func (c *Controller) allAnswered(r ReplicaReport, s *State, set map[string]bool) bool {
	if !r.Complete || !r.LaggingAll || len(r.Lagging) == 0 || len(r.Lagging) > maxExchange {
		return false
	}
	mine := map[string]bool{}
	for _, a := range c.tracker.answer(parseRefs(r.Lagging), exchangeGate(s.Phase)) {
		mine[a.String()] = true
	}
	for _, l := range r.Lagging {
		if !set[l] && !mine[l] {
			return false
		}
	}
	return true
}

// withAnswers returns p, this replica's progress on s, with its laggards that the other replicas' current
// reports answer counted as done; p itself without a cluster or answers.
func (c *Controller) withAnswers(ctx context.Context, s *State, p *Progress) *Progress {
	if c.cfg.Client == nil || exchangeGate(s.Phase) == "" || len(p.lagging) == 0 {
		return p
	}
	reports, _, err := c.readReports(ctx)
	if err != nil {
		return p
	}
	return credit(p, exchangeGate(s.Phase), c.answered(reports, s))
}

// answerSet is what the other replicas answered at this replica's last report, for a generation.
type answerSet struct {
	generation uint64
	set        map[string]bool
}

// credit returns p with its laggards at gate that are in answered counted as done (no longer lagging or
// overdue, listed or named); p itself when none are. Crediting twice counts each laggard once.
func credit(p *Progress, gate string, answered map[string]bool) *Progress {
	var n, overdue int
	var lagging []holderRef
	var lagOverdue []bool
	for i, l := range p.lagging {
		od := i < len(p.laggingOverdue) && p.laggingOverdue[i]
		if !answered[l.String()] {
			lagging, lagOverdue = append(lagging, l), append(lagOverdue, od)
			continue
		}
		n++
		if od {
			overdue++
		}
	}
	if n == 0 {
		return p
	}
	q := *p
	q.lagging, q.laggingOverdue = lagging, lagOverdue
	q.Gates = slices.Clone(p.Gates)
	for i := range q.Gates {
		if g := &q.Gates[i]; g.Name == gate {
			g.Done, g.Lagging, g.Overdue = g.Done+n, max(g.Lagging-(n-overdue), 0), max(g.Overdue-overdue, 0)
		}
	}
	if gate == GateBundle {
		q.HoldingNext += n
	} else {
		q.LeafNext += n
	}
	q.Laggards = slices.DeleteFunc(slices.Clone(p.Laggards), func(l Laggard) bool {
		return answered[l.ref.String()]
	})
	return &q
}

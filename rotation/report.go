package rotation

import (
	"fmt"
	"io"
	"time"
)

// WriteText prints p for `meshca rotation status`: the holders, each gate's progress ("97.3 % of holders hold
// the new root") with its ETA, the laggards with their last and next renewal, and where they are.
func (p *Progress) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	ew.printf("holders:    %d with an unexpired certificate (as of %s)", p.Holders, ts(p.At))
	if p.Coarse > 0 {
		ew.printf("; %d of them identities without pod claims (coarse)", p.Coarse)
	}
	ew.printf("\n")
	if !p.Complete {
		ew.printf("tracker:    incomplete until %s (a full certificate lifetime since meshca started)\n",
			ts(p.CompleteAt))
	}
	gates := p.Gates
	if len(gates) == 0 { // a report without gates (an older meshca's): the counts only
		gates = []GateProgress{{Name: GateBundle, Holders: p.Holders, Done: p.HoldingNext},
			{Name: GateLeaf, Holders: p.Holders, Done: p.LeafNext}}
	}
	for _, g := range gates {
		mark := ""
		if g.Active {
			mark = " (this phase's gate)"
		}
		ew.printf("%-11s %.1f %% of holders %s%s: %d of %d; %d lagging, %d overdue", g.Name+":", g.Percent(),
			g.What(), mark, g.Done, g.Holders, g.Lagging, g.Overdue)
		if (g.Done < g.Holders || !p.Complete) && !g.ETA.IsZero() {
			ew.printf("; ETA %s, at the latest %s", ts(g.ETA), ts(g.Latest))
		}
		ew.printf("\n")
	}
	for _, l := range p.Laggards {
		ew.printf("  waiting for %s", l.Identity)
		if l.Kind != "" {
			ew.printf(" (%s", l.Kind)
			if l.Namespace != "" {
				ew.printf(", namespace %s", l.Namespace)
			}
			if l.Node != "" {
				ew.printf(", node %s", l.Node)
			}
			ew.printf(")")
		}
		if !l.LastRenewal.IsZero() {
			ew.printf(": renewed %s, next renewal %s,", ts(l.LastRenewal), ts(l.NextRenewal))
		}
		ew.printf(" certificate expires %s", ts(l.NotAfter))
		if l.Overdue {
			ew.printf(" (OVERDUE: past its renewal time)")
		}
		if l.Replica != "" {
			ew.printf(" [seen by replica %s]", l.Replica)
		}
		ew.printf("\n")
	}
	for _, by := range []struct {
		what string
		c    []Count
	}{{"namespace", p.ByNamespace}, {"node", p.ByNode}} {
		if len(by.c) == 0 {
			continue
		}
		ew.printf("laggards by %s:", by.what)
		for _, c := range by.c {
			ew.printf(" %s %d", c.Name, c.Count)
		}
		ew.printf("\n")
	}
	for _, c := range p.CAs {
		ew.printf("leaves:     %d from %s\n", c.Count, c.Name)
	}
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

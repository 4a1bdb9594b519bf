package rotation_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/rotation"
)

// The text status names the share of holders per gate, the ETA, and each laggard with where it runs and its
// last and next renewal, overdue ones marked.
func TestStatusTextNamesLaggardsWithTheirRenewals(t *testing.T) {
	oldCA, newCA := genCA(t), genCA(t)
	c := &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	tr := warmTracker(c)
	for i, name := range []string{"a-1", "a-2", "a-3"} {
		tr.ObserveResult(byPod(issued(t, oldCA, "a", c.t.Add(time.Hour), oldCA.Root), name, name,
			[]string{"n1", "n1", "n2"}[i], false))
	}
	tr.SetTarget(newCA.Root)
	c.t = c.t.Add(40 * time.Minute)
	for _, name := range []string{"a-1", "a-3"} {
		tr.ObserveResult(byPod(issued(t, oldCA, "a", c.t.Add(time.Hour), oldCA.Root, newCA.Root), name, name, "n1",
			false))
	}
	var b strings.Builder
	if err := tr.Progress(1, rotation.PhasePrepared).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"bundle:     66.7 % of holders hold the new root (this phase's gate): 2 of 3; 0 lagging, 1 overdue; " +
			"ETA 2026-11-30T13:00:00Z, at the latest 2026-11-30T13:00:00Z",
		"waiting for a-2 (pod, namespace ns, node n1): renewed 2026-11-30T12:00:00Z, next renewal " +
			"2026-11-30T12:30:00Z, certificate expires 2026-11-30T13:00:00Z (OVERDUE: past its renewal time)",
		"laggards by namespace: ns 1", "laggards by node: n1 1",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}

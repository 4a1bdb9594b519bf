package rotation_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/rotation"
)

// observe tells r that pod uid renewed now, with a bundle of bundle's roots and a leaf from g.
func (r *replica) observe(t *testing.T, g *file.Generated, uid string, bundle ...*file.Generated) {
	t.Helper()
	var roots []*x509.Certificate
	for _, b := range bundle {
		roots = append(roots, b.Root)
	}
	res := byPod(issued(t, g, "web", time.Now().Add(time.Hour), roots...), uid, "web-"+uid, "node-a", false)
	r.c.Observer(nil).(ca.ResultObserver).ObserveResult(res)
}

// TestReplicasAnswerEachOthersLaggards: a holder that renewed with the next root through one replica, after an
// older renewal through the other, does not hold the other's gate: each replica lists its laggards and answers
// the other's from its later records. A holder whose latest renewal lacks the next root holds the gate
// although an earlier record elsewhere has it, until it renews again.
func TestReplicasAnswerEachOthersLaggards(t *testing.T) {
	k, ns := kubeCluster(t)
	ctx := context.Background()
	oldCA, newCA := genCA(t), genCA(t)
	a, b := startReplica(t, k, ns, "meshca-a", time.Hour), startReplica(t, k, ns, "meshca-b", time.Hour)
	var lead, other *replica
	catest.Eventually(t, 20*time.Second, "one replica leads", func() error {
		switch {
		case a.c.Leading() && !b.c.Leading():
			lead, other = a, b
		case b.c.Leading() && !a.c.Leading():
			lead, other = b, a
		default:
			return errors.New("no single leader")
		}
		return nil
	})
	// Before the rotation: "moved" renewed at the other replica, "back" at the leader and "late" at the leader
	// with the next root already; a second later "back" renews at the leader again and "late" at the other
	// replica, both without the next root.
	other.observe(t, oldCA, "moved", oldCA)
	lead.observe(t, oldCA, "back", oldCA)
	lead.observe(t, oldCA, "late", oldCA, newCA)
	time.Sleep(1100 * time.Millisecond)
	other.observe(t, oldCA, "late", oldCA)
	start := rotation.Change{Action: rotation.ActionStart, Next: newCA.Root, Old: oldCA.Root, Reason: "test"}
	if _, _, err := lead.c.Do(ctx, start, 0); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 10*time.Second, "both replicas publish", func() error {
		for _, r := range []*replica{a, b} {
			if ph := r.c.State().Phase; ph != rotation.PhasePublishing {
				return fmt.Errorf("a replica is at %s", ph)
			}
		}
		return nil
	})
	// "moved" renews with the next root at the leader, "back" at the other replica: each replica's own
	// record is older than the other's, which has the next root.
	time.Sleep(1100 * time.Millisecond)
	lead.observe(t, oldCA, "moved", oldCA, newCA)
	other.observe(t, oldCA, "back", oldCA, newCA)
	time.Sleep(2 * time.Second) // ten polls: reports and answers are exchanged
	if ph := lead.c.State().Phase; ph != rotation.PhasePublishing {
		t.Fatalf("the rotation moved on to %s while the latest renewal of \"late\" lacks the next root", ph)
	}
	advance := rotation.Change{Action: rotation.ActionAdvance}
	if _, _, err := lead.c.Do(ctx, advance, 0); !errors.Is(err, rotation.ErrGateClosed) {
		t.Fatalf("advance while \"late\" lacks the next root: %v, want ErrGateClosed", err)
	}
	// Status and metrics count the answered laggards as holding the next root: every holder at the leader
	// ("back" answered), all but "late" at the other replica ("moved" answered). Both name "late": the
	// leader as seen by the other replica (peers.go).
	otherID := other.c.Status().Identity
	for _, c := range []struct {
		r    *replica
		done int
		lag  []string
	}{{lead, 3, []string{"web-late@" + otherID}}, {other, 2, []string{"web-late@"}}} {
		p := c.r.c.Progress()
		var names []string
		for _, l := range p.Laggards {
			names = append(names, l.Identity+"@"+l.Replica)
		}
		if p.Holders != 3 || p.HoldingNext != c.done || !slices.Equal(names, c.lag) {
			t.Errorf("%s: %d of %d holders hold the next root, laggards %v; want %d, laggards %v",
				c.r.c.Status().Identity, p.HoldingNext, p.Holders, names, c.done, c.lag)
		}
	}
	// The leader counts the other replica's laggard by namespace too; each replica's leaves by CA are summed.
	lp, op := lead.c.Progress(), other.c.Progress()
	if n := countSum(lp.ByNamespace); n != 1 {
		t.Errorf("the leader counts %d laggards by namespace (%v), want the other replica's one", n, lp.ByNamespace)
	}
	if l, o := countSum(lp.CAs), countSum(op.CAs); l != 6 || o != 6 {
		t.Errorf("leaves by CA: the leader counts %d, the other replica %d; want both replicas' 3 + 3", l, o)
	}
	other.observe(t, oldCA, "late", oldCA, newCA)
	catest.Eventually(t, 10*time.Second, "the gate opens once every holder's latest renewal has the next root",
		func() error {
			if ph := lead.c.State().Phase; ph != rotation.PhaseActivated {
				return fmt.Errorf("at %s", ph)
			}
			return nil
		})
}

func countSum(cs []rotation.Count) (n int) {
	for _, c := range cs {
		n += c.Count
	}
	return n
}

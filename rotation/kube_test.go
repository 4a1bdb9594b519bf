package rotation_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/internal/leader"
	"github.com/meshca/meshca/rotation"
)

func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }

func kubeCluster(t *testing.T) (*catest.Kube, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a kube-apiserver (scripts/testbins.sh)")
	}
	k := catest.SharedKube(t)
	return k, k.Namespace(t)
}

// TestKubeStoreComparesAndSwaps: two writers read the same version; the second write is refused with
// ErrConflict, and Update reads again and applies its change on top of the first.
func TestKubeStoreComparesAndSwaps(t *testing.T) {
	k, ns := kubeCluster(t)
	ctx := context.Background()
	a := rotation.KubeStore{Client: k.Client, Namespace: ns, Name: "meshca-rotation"}
	b := a
	now := time.Now()
	oldCA, newCA := genCA(t), genCA(t)

	sa, va, err := a.Load(ctx)
	if err != nil || sa.Phase != rotation.PhaseIdle || va != "" {
		t.Fatalf("Load of a missing ConfigMap: %v, %q, %v; want idle at version \"\"", sa, va, err)
	}
	sb, vb, _ := b.Load(ctx)
	if _, err := sa.Apply(rotation.Change{Action: rotation.ActionStart, Next: newCA.Root, Old: oldCA.Root}, nil,
		now); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Save(ctx, sa, va); err != nil {
		t.Fatalf("the first writer: %v", err)
	}
	if _, err := sb.Apply(rotation.Change{Action: rotation.ActionStart, Next: genCA(t).Root, Old: oldCA.Root},
		nil, now); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Save(ctx, sb, vb); !errors.Is(err, rotation.ErrConflict) {
		t.Fatalf("the second writer of a create: %v, want ErrConflict", err)
	}
	// Both read version 1; the first update wins, the second is refused.
	s1, v1, _ := a.Load(ctx)
	s2, v2, _ := b.Load(ctx)
	s1.Apply(rotation.Change{Action: rotation.ActionPause}, nil, now)
	s2.Apply(rotation.Change{Action: rotation.ActionAdvance}, nil, now)
	if _, err := a.Save(ctx, s1, v1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Save(ctx, s2, v2); !errors.Is(err, rotation.ErrConflict) {
		t.Fatalf("the second writer of an update: %v, want ErrConflict", err)
	}
	got, err := rotation.Update(ctx, b, func(s *rotation.State) error {
		_, err := s.Apply(rotation.Change{Action: rotation.ActionAdvance}, nil, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Phase != rotation.PhasePublishing || !got.Paused || got.Generation != 3 ||
		got.NextRoot != string(newCA.RootPEM) {
		t.Fatalf("after both writers: %s paused=%v generation %d; want the first writer's start and pause, "+
			"then the advance", got.Phase, got.Paused, got.Generation)
	}
}

// replica is one meshca replica's rotation controller in the test cluster.
type replica struct {
	c      *rotation.Controller
	cancel context.CancelFunc
	done   chan struct{}
}

func startReplica(t *testing.T, k *catest.Kube, ns, id string, maxLife time.Duration) *replica {
	t.Helper()
	lease := leader.LeaseConfig{LeaseNamespace: ns, Identity: id, LeaseDuration: 2 * time.Second,
		RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 300 * time.Millisecond}
	c, err := rotation.New(rotation.Config{ConfigMap: "meshca-rotation", LeaseConfig: lease,
		PollInterval: 200 * time.Millisecond, MaxLifetime: maxLife, Started: time.Now().Add(-maxLife),
		Client: k.Client, Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{c: c, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = c.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

// lag makes a holder that received a bundle without the next root known to r.
func (r *replica) lag(t *testing.T, old *x509.Certificate, notAfter time.Time) {
	t.Helper()
	id, err := csr.ParseID("spiffe://cluster.local/ns/default/sa/late")
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{NotAfter: notAfter}
	r.c.Observer(nil).(ca.ResultObserver).ObserveResult(&ca.Result{Identity: id, Chain: []*x509.Certificate{leaf,
		old}, TrustBundle: []byte("old bundle")})
}

// TestTwoReplicasCarryOnAfterOneIsKilled: two replicas share the API server; only the Lease holder changes the
// state, the other refuses with ErrNotLeader. A holder known only to the leader holds the publishing gate for
// both; the leader is killed mid-rotation, the other takes the Lease, keeps the gate closed until what the dead
// replica issued may have expired, then carries the rotation to the end. Every transition is an Event.
func TestTwoReplicasCarryOnAfterOneIsKilled(t *testing.T) {
	k, ns := kubeCluster(t)
	ctx := context.Background()
	oldCA, newCA := genCA(t), genCA(t)
	const maxLife = 4 * time.Second
	a, b := startReplica(t, k, ns, "meshca-a", maxLife), startReplica(t, k, ns, "meshca-b", maxLife)
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
	start := rotation.Change{Action: rotation.ActionStart, Next: newCA.Root, Old: oldCA.Root, Reason: "yearly"}
	if _, _, err := other.c.Do(ctx, start, 0); !errors.Is(err, rotation.ErrNotLeader) {
		t.Fatalf("a change at the replica without the Lease: %v, want ErrNotLeader", err)
	}
	lead.lag(t, oldCA.Root, time.Now().Add(time.Hour))
	if _, _, err := lead.c.Do(ctx, start, 0); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 10*time.Second, "both replicas publish; the laggard holds the gate", func() error {
		for _, r := range []*replica{a, b} {
			if ph := r.c.State().Phase; ph != rotation.PhasePublishing {
				return fmt.Errorf("a replica is at %s", ph)
			}
		}
		return nil
	})
	time.Sleep(time.Second) // several polls: the gate stays closed
	if ph := other.c.State().Phase; ph != rotation.PhasePublishing {
		t.Fatalf("the rotation moved on to %s with a holder lacking the next root", ph)
	}

	killed := time.Now()
	lead.stop()
	catest.Eventually(t, 20*time.Second, "the other replica takes the Lease and ends the rotation", func() error {
		if ph := other.c.State().Phase; ph != rotation.PhaseIdle {
			return fmt.Errorf("at %s", ph)
		}
		return nil
	})
	if waited := time.Since(killed); waited < maxLife-time.Second {
		t.Fatalf("the survivor ended the rotation %s after the kill; the dead replica's certificates may be "+
			"valid for %s", waited, maxLife)
	}
	s := other.c.State()
	var by []string
	for _, tr := range s.History {
		by = append(by, fmt.Sprintf("%s→%s by %s", tr.From, tr.To, tr.By))
	}
	if len(s.History) != 5 || s.History[0].By != lead.c.Status().Identity ||
		s.History[4].By != other.c.Status().Identity {
		t.Fatalf("history %v; want the start by the first leader and the end by the survivor", by)
	}
	// Events are recorded after each transition is stored, in the background: wait for the fifth.
	catest.Eventually(t, 10*time.Second, "one Event per transition", func() error {
		evs, err := k.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var reasons []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "meshca-rotation" {
				reasons = append(reasons, e.Reason)
			}
		}
		if len(reasons) != 5 || !strings.Contains(strings.Join(reasons, ","), "RotationStart") {
			return fmt.Errorf("Events %v; want one per transition", reasons)
		}
		return nil
	})
}

// TestLeaderWaitsForAReplicaBehind: a replica whose report is for an older generation holds the leader's gate
// although the leader's own view is open; once it reports the current generation with an open gate, the leader
// advances.
func TestLeaderWaitsForAReplicaBehind(t *testing.T) {
	k, ns := kubeCluster(t)
	ctx := context.Background()
	r := startReplica(t, k, ns, "meshca-a", time.Hour)
	catest.Eventually(t, 20*time.Second, "the replica leads", func() error {
		if !r.c.Leading() {
			return errors.New("not yet")
		}
		return nil
	})
	s, _, err := r.c.Do(ctx, rotation.Change{Action: rotation.ActionPause}, 0)
	if !errors.Is(err, rotation.ErrWrongPhase) {
		t.Fatalf("pause of an idle rotation: %v, %v", s, err)
	}
	if s, _, err = r.c.Do(ctx, rotation.Change{Action: rotation.ActionStart, Next: genCA(t).Root,
		Old: genCA(t).Root}, 0); err != nil {
		t.Fatal(err)
	}
	if s, _, err = r.c.Do(ctx, rotation.Change{Action: rotation.ActionPause}, 0); err != nil {
		t.Fatal(err)
	}
	report := func(gen uint64) {
		t.Helper()
		patch := fmt.Sprintf(`{"data":{"meshca-b":%q}}`, fmt.Sprintf(
			`{"generation":%d,"phase":"staged","at":%q,"leafNext":0,"holders":0}`, gen,
			time.Now().UTC().Format(time.RFC3339Nano)))
		if _, err := k.Client.CoreV1().ConfigMaps(ns).Patch(ctx, "meshca-rotation-replicas",
			"application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Publishing needs no gate; the step out of publishing does.
	if _, _, err := r.c.Do(ctx, rotation.Change{Action: rotation.ActionAdvance}, 0); err != nil {
		t.Fatal(err)
	}
	report(s.Generation)
	_, _, err = r.c.Do(ctx, rotation.Change{Action: rotation.ActionAdvance}, 0)
	if !errors.Is(err, rotation.ErrGateClosed) || !strings.Contains(err.Error(), "meshca-b is behind") {
		t.Fatalf("advance with a replica behind: %v, want ErrGateClosed naming meshca-b", err)
	}
	report(s.Generation + 1)
	if _, _, err := r.c.Do(ctx, rotation.Change{Action: rotation.ActionAdvance}, 0); err != nil {
		t.Fatalf("advance once every replica reports the current generation: %v", err)
	}
}

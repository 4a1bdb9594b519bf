package rotation_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/leader"
	"github.com/meshca/meshca/rotation"
)

// switchReplica is one replica's rotation controller and file backend with nextDir.
type switchReplica struct {
	*replica
	b *file.Backend
}

func startSwitchReplica(t *testing.T, k *catest.Kube, ns, id, cacerts, next string) *switchReplica {
	t.Helper()
	var ctl atomic.Pointer[rotation.Controller]
	b := switchingBackend(t, cacerts, next, &ctl)
	lease := leader.LeaseConfig{LeaseNamespace: ns, Identity: id, LeaseDuration: 2 * time.Second,
		RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 300 * time.Millisecond}
	c, err := rotation.New(rotation.Config{ConfigMap: "meshca-rotation", LeaseConfig: lease, Manual: true,
		PollInterval: 200 * time.Millisecond, MaxLifetime: time.Hour, Started: time.Now().Add(-time.Hour),
		Client: k.Client, Logger: catest.DiscardLogger(), CASwitch: b})
	if err != nil {
		t.Fatal(err)
	}
	ctl.Store(c)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{c: c, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = c.Run(ctx) }()
	t.Cleanup(r.stop)
	return &switchReplica{replica: r, b: b}
}

// signsUnder returns nil when r's backend signs a workload certificate under root.
func (r *switchReplica) signsUnder(t *testing.T, root *x509.Certificate) error {
	id, _ := url.Parse("spiffe://cluster.local/ns/default/sa/app")
	resp, err := r.b.Sign(context.Background(), &backends.SignRequest{PublicKey: catest.ECKey(t).Public(),
		URIs: []*url.URL{id}, TTL: time.Hour})
	if err != nil {
		return err
	}
	if err := resp.Chain[len(resp.Chain)-2].CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("%s signs under another root", r.c.Status().Identity)
	}
	return nil
}

// TestTwoReplicasSwitchTheCATogether: two replicas share the rotation ConfigMap on the real API server and
// mount the same cacerts and nextDir. The leader's start takes the next root from nextDir; both replicas sign
// with the old CA until the leader activates, then both with the new one, both back with the old one after a
// rollback, and both keep the new one through retiring and idle.
func TestTwoReplicasSwitchTheCATogether(t *testing.T) {
	k, ns := kubeCluster(t)
	ctx := context.Background()
	cacerts, oldCA := catest.FileCA(t)
	newCA := genCA(t)
	next := filepath.Join(t.TempDir(), "cacerts-next")
	mustWrite(t, newCA, next)
	reps := []*switchReplica{startSwitchReplica(t, k, ns, "meshca-a", cacerts, next),
		startSwitchReplica(t, k, ns, "meshca-b", cacerts, next)}
	// leader returns the replica that holds the Lease now (it may move under load).
	leader := func() (*switchReplica, error) {
		for _, r := range reps {
			if r.c.Leading() {
				return r, nil
			}
		}
		return nil, errors.New("no leader")
	}
	both := func(what string, ph rotation.Phase, root *x509.Certificate) {
		t.Helper()
		catest.Eventually(t, 10*time.Second, what, func() error {
			for _, r := range reps {
				if got := r.c.State().Phase; got != ph {
					return fmt.Errorf("a replica is at %s", got)
				}
				if err := r.signsUnder(t, root); err != nil {
					return err
				}
			}
			return nil
		})
	}
	do := func(a rotation.Action) {
		t.Helper()
		catest.Eventually(t, 20*time.Second, string(a)+" by the leader", func() error {
			lead, err := leader()
			if err == nil {
				// closed while the other replica has not reported the latest generation
				_, _, err = lead.c.Do(ctx, rotation.Change{Action: a}, 0)
			}
			return err
		})
	}
	do(rotation.ActionStart)
	both("both replicas staged, signing with the old CA", rotation.PhaseStaged, oldCA.Root)
	for _, r := range reps {
		if s := r.c.State(); s.NextRoot != string(newCA.RootPEM) || s.OldRoot != string(oldCA.RootPEM) {
			t.Fatal("start did not take the roots from cacerts and nextDir")
		}
	}
	do(rotation.ActionAdvance)
	both("both replicas publishing, signing with the old CA", rotation.PhasePublishing, oldCA.Root)
	do(rotation.ActionAdvance)
	both("both replicas activated, signing with the new CA", rotation.PhaseActivated, newCA.Root)
	do(rotation.ActionRollback)
	both("both replicas rolled back, signing with the old CA", rotation.PhasePublishing, oldCA.Root)
	do(rotation.ActionAdvance)
	both("both replicas activated again", rotation.PhaseActivated, newCA.Root)
	do(rotation.ActionAdvance)
	both("both replicas retiring, signing with the new CA", rotation.PhaseRetiring, newCA.Root)
	do(rotation.ActionAdvance)
	both("both replicas idle, signing with the new CA", rotation.PhaseIdle, newCA.Root)
}

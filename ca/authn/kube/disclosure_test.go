package kube_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/catest"
)

// TestUnknownClusterDoesNotListClusters is item 10 of issue 15: an unauthenticated caller naming an unknown
// cluster learns neither the cluster IDs meshca knows nor where their secrets are, and its own clusterid
// comes back bounded; the detail stays in meshca's log.
func TestUnknownClusterDoesNotListClusters(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := k.Client.CoreV1().Secrets(ns).Create(ctx, remoteSecret("istio-remote-secret-east",
		map[string][]byte{"east-prod-7": remoteKubeconfig(t, k, fmt.Sprintf("{token: %q}", k.Config.BearerToken))}),
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var c clock
	m, err := kube.NewMultiCluster(kube.MultiClusterConfig{Client: k.Client, Namespace: ns,
		Local: newTokenReview(t, meshcaConfig(t, k), &c, nil), Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitClusters(t, m, "east-prod-7")
	w := newWorkload(t, k, ns, "app", "node-"+ns)
	tok := mintToken(t, k.Client, w, authn.DefaultAudience)
	header := "probe-" + strings.Repeat("x", 300)
	_, err = m.Authenticate(ctx, &authn.Request{Token: tok, ClusterID: header})
	if !errors.Is(err, authn.ErrUnauthenticated) {
		t.Fatalf("unknown cluster: %v, want ErrUnauthenticated", err)
	}
	for _, secret := range []string{"east-prod-7", authn.DefaultClusterID, ns, "istio-remote-secret-east"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the refusal of an unknown cluster tells the caller %q: %v", secret, err)
		}
	}
	if strings.Contains(err.Error(), strings.Repeat("x", 100)) {
		t.Errorf("the refusal echoes the caller's 300-byte clusterid unbounded: %d bytes", len(err.Error()))
	}
}

// TestTerminatingPodsAreNotImpersonated is item 10 of issue 15: a pod being deleted (DeletionTimestamp set,
// held by a finalizer) no longer lets its node's ztunnel obtain its identity.
func TestTerminatingPodsAreNotImpersonated(t *testing.T) {
	c := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := startNodeAgents(t, ctx, meshcaConfig(t, c.k), c.ns+"/ztunnel")
	w := newWorkload(t, c.k, c.ns, "leaving", c.node1)
	pods := c.k.Client.CoreV1().Pods(c.ns)
	p, err := pods.Get(ctx, w.pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Finalizers = []string{"meshca.test/hold"}
	if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p, err := pods.Get(context.Background(), w.pod, metav1.GetOptions{}); err == nil {
			p.Finalizers = nil
			_, _ = pods.Update(context.Background(), p, metav1.UpdateOptions{})
		}
	})
	zt := c.caller(t, c.ztunnelTok)
	if err := a.CheckImpersonation(ctx, zt, c.id("leaving")); err != nil {
		t.Fatalf("running pod: %v, want allowed", err)
	}
	if err := pods.Delete(ctx, w.pod, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 10*time.Second, "impersonation of a terminating pod denied", func() error {
		err := a.CheckImpersonation(ctx, zt, c.id("leaving"))
		if !errors.Is(err, authn.ErrImpersonationDenied) {
			return fmt.Errorf("terminating pod: %v, want ErrImpersonationDenied", err)
		}
		return nil
	})
}

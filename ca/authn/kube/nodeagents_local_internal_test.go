package kube

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr"
)

// localNodeAgents is a NodeAgents trusting istio-system/ztunnel in cluster "c1", never started: its API server
// does not exist, and its pod cache holds what the test adds.
func localNodeAgents(t *testing.T) *NodeAgents {
	t.Helper()
	a, err := NewNodeAgents(NodeAgentsConfig{Client: unreachableClient(t), ClusterID: "c1",
		TrustedAccounts: []string{"istio-system/ztunnel"}, LookupTimeout: 2 * time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestNodeAgentsRefuseBeforeLookingAtPods: who may impersonate is decided before the pod cache is consulted;
// a trusted node agent of this cluster then needs the cache, which is unavailable until synced.
func TestNodeAgentsRefuseBeforeLookingAtPods(t *testing.T) {
	a := localNodeAgents(t)
	target := csr.Identity{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "web"}
	// The target's pod is on the node agent's node, in the cache: every refusal below is the caller's.
	if err := a.pods.GetIndexer().Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns"},
		Spec:   corev1.PodSpec{NodeName: "n1", ServiceAccountName: "web"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}); err != nil {
		t.Fatal(err)
	}
	ztunnel := func(cluster string) *authn.Caller {
		return &authn.Caller{Namespace: "istio-system", ServiceAccount: "ztunnel", ClusterID: cluster, NodeName: "n1"}
	}
	tests := []struct {
		name   string
		caller *authn.Caller
		want   error
	}{
		{"no caller is denied", nil, authn.ErrImpersonationDenied},
		{"an untrusted account is denied", &authn.Caller{Namespace: "istio-system", ServiceAccount: "istiod",
			ClusterID: "c1", NodeName: "n1"}, authn.ErrImpersonationDenied},
		{"the trusted name in another namespace is denied", &authn.Caller{Namespace: "default",
			ServiceAccount: "ztunnel", ClusterID: "c1", NodeName: "n1"}, authn.ErrImpersonationDenied},
		{"a trusted node agent of another cluster is denied", ztunnel("c2"), authn.ErrImpersonationDenied},
		{"a trusted node agent of no cluster (client certificate) is denied", ztunnel(""),
			authn.ErrImpersonationDenied},
		{"a trusted node agent of this cluster waits for the pod cache", ztunnel("c1"), authn.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.CheckImpersonation(t.Context(), tt.caller, target)
			if !errors.Is(err, tt.want) {
				t.Fatalf("CheckImpersonation: %v, want %v", err, tt.want)
			}
			if tt.want == authn.ErrUnavailable && errors.Is(err, authn.ErrImpersonationDenied) {
				t.Fatalf("CheckImpersonation: %v is also a denial", err)
			}
		})
	}
	if a.Ready() {
		t.Fatal("Ready before Start")
	}
}

// TestNodeOfTrustsOnlyTheBoundPod: a node agent's node comes from its token, or from the cached pod its token
// is bound to when name, namespace, service account and (if the token names one) UID all agree; anything else
// asks the API server.
func TestNodeOfTrustsOnlyTheBoundPod(t *testing.T) {
	a := localNodeAgents(t)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ztunnel-x", Namespace: "istio-system", UID: "u1"},
		Spec: corev1.PodSpec{NodeName: "n1", ServiceAccountName: "ztunnel"}}
	unscheduled := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ztunnel-y", Namespace: "istio-system"},
		Spec: corev1.PodSpec{ServiceAccountName: "ztunnel"}}
	for _, p := range []*corev1.Pod{pod, unscheduled} {
		if err := a.pods.GetIndexer().Add(p); err != nil {
			t.Fatal(err)
		}
	}
	caller := func(edit func(*authn.Caller)) *authn.Caller {
		c := &authn.Caller{Namespace: "istio-system", ServiceAccount: "ztunnel", PodName: "ztunnel-x", PodUID: "u1"}
		edit(c)
		return c
	}
	tests := []struct {
		name   string
		caller *authn.Caller
		node   string
		want   error
	}{
		{"the token's node is taken as is", caller(func(c *authn.Caller) { c.NodeName = "n7"; c.PodName = "" }), "n7",
			nil},
		{"a token naming neither node nor pod is denied", caller(func(c *authn.Caller) { c.PodName = "" }), "",
			authn.ErrImpersonationDenied},
		{"the bound pod gives the node", caller(func(*authn.Caller) {}), "n1", nil},
		{"the bound pod without a UID in the token gives the node", caller(func(c *authn.Caller) { c.PodUID = "" }),
			"n1", nil},
		{"a pod of another UID is looked up", caller(func(c *authn.Caller) { c.PodUID = "u2" }), "",
			authn.ErrUnavailable},
		{"a pod of another service account is looked up",
			caller(func(c *authn.Caller) { c.ServiceAccount = "other" }), "", authn.ErrUnavailable},
		{"a pod not in the cache is looked up", caller(func(c *authn.Caller) { c.PodName = "ztunnel-z" }), "",
			authn.ErrUnavailable},
		{"an unscheduled bound pod is denied", caller(func(c *authn.Caller) { c.PodName = "ztunnel-y"; c.PodUID = "" }),
			"", authn.ErrImpersonationDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node, err := a.nodeOf(t.Context(), tt.caller)
			if node != tt.node || (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("nodeOf = %q, %v; want %q, %v", node, err, tt.node, tt.want)
			}
		})
	}
}

// TestPodCacheKeepsWhatDecisionsRead: pods are stripped to the fields CheckImpersonation reads and indexed by
// node; pods without a node are not indexed.
func TestPodCacheKeepsWhatDecisionsRead(t *testing.T) {
	now := metav1.Now()
	full := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: types.UID("u"), ResourceVersion: "7",
			DeletionTimestamp: &now, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "n1", ServiceAccountName: "web",
			Containers: []corev1.Container{{Name: "c", Image: "web"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"},
	}
	obj, err := strip(full)
	if err != nil {
		t.Fatal(err)
	}
	p := obj.(*corev1.Pod)
	if p.Name != "p" || p.Namespace != "ns" || p.UID != "u" || p.ResourceVersion != "7" ||
		p.DeletionTimestamp == nil || p.Spec.NodeName != "n1" || p.Spec.ServiceAccountName != "web" ||
		p.Status.Phase != corev1.PodRunning {
		t.Fatalf("strip lost a field decisions read: %+v", p)
	}
	if p.Labels != nil || p.Spec.Containers != nil || p.Status.PodIP != "" {
		t.Fatalf("strip kept fields no decision reads: %+v", p)
	}
	if obj, err := strip("not a pod"); err != nil || obj != "not a pod" {
		t.Fatalf("strip of a non-pod = %v, %v; want it unchanged", obj, err)
	}

	index := localNodeAgents(t).pods.GetIndexer().GetIndexers()[nodeIndex]
	for _, tt := range []struct {
		obj  any
		want []string
	}{{full, []string{"n1"}}, {&corev1.Pod{}, nil}, {"not a pod", nil}} {
		if got, err := index(tt.obj); err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("node index of %T = %v, %v; want %v", tt.obj, got, err, tt.want)
		}
	}
}

// TestNodeAgentsConfig: what a configuration must hold, and the defaults of what it leaves out.
func TestNodeAgentsConfig(t *testing.T) {
	valid := NodeAgentsConfig{Client: unreachableClient(t), TrustedAccounts: []string{"istio-system/ztunnel"}}
	tests := []struct {
		name    string
		edit    func(*NodeAgentsConfig)
		mention string // in the error; empty: valid
	}{
		{"a client and one account are enough", func(*NodeAgentsConfig) {}, ""},
		{"no client is refused", func(c *NodeAgentsConfig) { c.Client = nil }, "client"},
		{"no trusted account is refused", func(c *NodeAgentsConfig) { c.TrustedAccounts = nil }, "trustedAccounts"},
		{"an account without namespace is refused", func(c *NodeAgentsConfig) { c.TrustedAccounts = []string{"/z"} },
			`"/z"`},
		{"an account without name is refused", func(c *NodeAgentsConfig) { c.TrustedAccounts = []string{"ns/"} },
			`"ns/"`},
		{"a negative sync timeout is refused", func(c *NodeAgentsConfig) { c.SyncTimeout = -1 }, "timeouts"},
		{"a negative lookup timeout is refused", func(c *NodeAgentsConfig) { c.LookupTimeout = -1 }, "timeouts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.edit(&c)
			err := c.Validate()
			if (err == nil) != (tt.mention == "") || (err != nil && !strings.Contains(err.Error(), tt.mention)) {
				t.Fatalf("Validate: %v, want an error naming %q", err, tt.mention)
			}
		})
	}
	a, err := NewNodeAgents(valid)
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.ClusterID != authn.DefaultClusterID || a.cfg.SyncTimeout != time.Minute ||
		a.cfg.LookupTimeout != 5*time.Second || a.cfg.Logger == nil ||
		!slices.Equal(a.trusted, []account{{"istio-system", "ztunnel"}}) {
		t.Fatalf("defaults: %+v, trusted %v", a.cfg, a.trusted)
	}
}

package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr"
)

const nodeIndex = "spec.nodeName"

// NodeAgentsConfig configures NodeAgents.
type NodeAgentsConfig struct {
	// Client reads pods; its identity needs list and watch on pods in all namespaces.
	Client kubernetes.Interface
	// TrustedAccounts are the node agents' service accounts as "<namespace>/<name>", e.g.
	// "istio-system/ztunnel" (Istio's CA_TRUSTED_NODE_ACCOUNTS).
	TrustedAccounts []string
	// ClusterID is the cluster whose pods Client sees. Callers authenticated for another cluster, or for none
	// (a client certificate), are refused.
	// Default authn.DefaultClusterID.
	ClusterID string
	// SyncTimeout bounds the initial pod list in Start. Default 60s.
	SyncTimeout time.Duration
	// LookupTimeout bounds the direct lookup made when the cache does not (yet) hold a pod. Default 5s.
	LookupTimeout time.Duration
	Logger        *slog.Logger
}

// Validate reports every problem with c at once. It has no side effects.
func (c *NodeAgentsConfig) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("kube: node agents: a Kubernetes client is required"))
	}
	if len(c.TrustedAccounts) == 0 {
		errs = append(errs, errors.New("kube: node agents: trustedAccounts is empty: name the node agents' "+
			"service accounts, e.g. istio-system/ztunnel"))
	}
	for _, a := range c.TrustedAccounts {
		if _, err := parseAccount(a); err != nil {
			errs = append(errs, fmt.Errorf("kube: node agents: %w", err))
		}
	}
	if c.SyncTimeout < 0 || c.LookupTimeout < 0 {
		errs = append(errs, errors.New("kube: node agents: timeouts must not be negative"))
	}
	return errors.Join(errs...)
}

func parseAccount(s string) (account, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return account{}, fmt.Errorf("trusted account %q must be <namespace>/<service account>", s)
	}
	return account{ns, name}, nil
}

type account struct{ namespace, name string }

// NodeAgents decides whether a node agent may obtain certificates for other workloads: Istio ambient's
// ztunnel asks for the identities of the pods on its node (gRPC metadata ImpersonatedIdentity). It implements
// authn.Impersonator. Start it before use.
type NodeAgents struct {
	cfg     NodeAgentsConfig
	trusted []account
	pods    cache.SharedIndexInformer
	factory informers.SharedInformerFactory
}

var _ authn.Impersonator = (*NodeAgents)(nil)

// NewNodeAgents returns a NodeAgents. It does not talk to the API server until Start.
func NewNodeAgents(cfg NodeAgentsConfig) (*NodeAgents, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = authn.DefaultClusterID
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = 60 * time.Second
	}
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &NodeAgents{cfg: cfg}
	for _, s := range cfg.TrustedAccounts {
		acc, _ := parseAccount(s)
		a.trusted = append(a.trusted, acc)
	}
	// Only scheduled pods, stripped to the fields decisions need: a large cluster's pods fit in little memory.
	a.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName!=" }),
		informers.WithTransform(strip))
	a.pods = a.factory.Core().V1().Pods().Informer()
	if err := a.pods.AddIndexers(cache.Indexers{nodeIndex: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("kube: node agents: %w", err)
	}
	return a, nil
}

// strip keeps what CheckImpersonation reads of a pod.
func strip(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID,
			ResourceVersion: p.ResourceVersion, DeletionTimestamp: p.DeletionTimestamp},
		Spec:   corev1.PodSpec{NodeName: p.Spec.NodeName, ServiceAccountName: p.Spec.ServiceAccountName},
		Status: corev1.PodStatus{Phase: p.Status.Phase},
	}, nil
}

// Start runs the pod informer until ctx ends and waits, at most SyncTimeout, for its first full list.
func (a *NodeAgents) Start(ctx context.Context) error {
	a.factory.Start(ctx.Done())
	wctx, cancel := context.WithTimeout(ctx, a.cfg.SyncTimeout)
	defer cancel()
	start := time.Now()
	if !cache.WaitForCacheSync(wctx.Done(), a.pods.HasSynced) {
		return fmt.Errorf(
			"kube: node agents: pod cache not synced after %s: check that meshca may list and watch pods "+
				"in all namespaces and that the API server is reachable",
			a.cfg.SyncTimeout,
		)
	}
	a.cfg.Logger.Info("node agent check ready", "pods", len(a.pods.GetStore().ListKeys()),
		"trusted_accounts", a.cfg.TrustedAccounts, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// Ready reports whether the pod cache has synced.
func (a *NodeAgents) Ready() bool { return a.pods.HasSynced() }

func deny(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{authn.ErrImpersonationDenied}, args...)...)
}

// CheckImpersonation implements authn.Impersonator: caller must be a trusted node agent of this cluster, and
// a Running or Pending pod that is not terminating, with target's namespace and service account, must be
// scheduled on the caller's node.
func (a *NodeAgents) CheckImpersonation(ctx context.Context, caller *authn.Caller, target csr.Identity) error {
	if caller == nil {
		return deny("no authenticated caller")
	}
	who := caller.Namespace + "/" + caller.ServiceAccount
	if !slices.Contains(a.trusted, account{caller.Namespace, caller.ServiceAccount}) {
		return deny("%s is not a trusted node agent (kubernetes.trustedNodeAccounts); only node agents such as "+
			"ztunnel may send ImpersonatedIdentity", who)
	}
	if caller.ClusterID != a.cfg.ClusterID {
		// The caller's cluster is the one whose issuer or API server verified it; pods of other clusters
		// cannot be checked here, so their node agents act only for themselves.
		return deny("node agent %s was not authenticated by this cluster's issuer or API server; impersonation "+
			"is served for the local cluster only", who)
	}
	if !a.pods.HasSynced() {
		return fmt.Errorf("%w: node agents: pod cache not synced yet", authn.ErrUnavailable)
	}
	node, err := a.nodeOf(ctx, caller)
	if err != nil {
		return err
	}
	match := func(p *corev1.Pod) bool {
		return p.Namespace == target.Namespace && p.Spec.ServiceAccountName == target.ServiceAccount &&
			p.Spec.NodeName == node && p.DeletionTimestamp == nil &&
			(p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending)
	}
	objs, err := a.pods.GetIndexer().ByIndex(nodeIndex, node)
	if err != nil {
		return fmt.Errorf("kube: node agents: pod index: %w", err)
	}
	for _, o := range objs {
		if match(o.(*corev1.Pod)) {
			return nil
		}
	}
	// A pod created a moment ago may not have reached the informer yet, and ztunnel asks for its certificate
	// as soon as the pod lands on the node. One direct, consistent list of that namespace on that node settles
	// it instead of guessing how long to wait; only trusted node agents get here.
	found, err := a.lookup(ctx, target.Namespace, fields.OneTermEqualSelector("spec.nodeName", node), match)
	if err != nil {
		return err
	}
	if found != nil {
		a.cfg.Logger.Debug("impersonation allowed by a pod not yet in the cache", "node", node,
			"pod", found.Namespace+"/"+found.Name)
		return nil
	}
	return deny("no Running or Pending pod (not terminating) of service account %s/%s is scheduled on node %q, "+
		"where node agent %s runs",
		target.Namespace, target.ServiceAccount, node, who)
}

// nodeOf returns the caller's node: from its bound token, or from the pod its token is bound to.
func (a *NodeAgents) nodeOf(ctx context.Context, caller *authn.Caller) (string, error) {
	if caller.NodeName != "" {
		return caller.NodeName, nil
	}
	if caller.PodName == "" {
		return "", deny("cannot tell which node %s/%s runs on: its token names neither a node nor a pod; "+
			"node agents must use a projected (pod-bound) service-account token",
			caller.Namespace, caller.ServiceAccount)
	}
	belongs := func(p *corev1.Pod) bool {
		return p.Name == caller.PodName && p.Namespace == caller.Namespace &&
			p.Spec.ServiceAccountName == caller.ServiceAccount &&
			(caller.PodUID == "" || string(p.UID) == caller.PodUID)
	}
	var pod *corev1.Pod
	obj, ok, _ := a.pods.GetStore().GetByKey(caller.Namespace + "/" + caller.PodName)
	if ok && belongs(obj.(*corev1.Pod)) {
		pod = obj.(*corev1.Pod)
	} else {
		var err error
		sel := fields.OneTermEqualSelector("metadata.name", caller.PodName)
		if pod, err = a.lookup(ctx, caller.Namespace, sel, belongs); err != nil {
			return "", err
		}
	}
	if pod == nil || pod.Spec.NodeName == "" {
		return "", deny("the pod %s/%s that node agent's token is bound to is not scheduled or no longer exists",
			caller.Namespace, caller.PodName)
	}
	return pod.Spec.NodeName, nil
}

// lookup lists pods of namespace matching sel from the API server (list, not get, so meshca needs no more
// than list and watch on pods) and returns the first for which match holds.
func (a *NodeAgents) lookup(ctx context.Context, namespace string, sel fields.Selector,
	match func(*corev1.Pod) bool) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.LookupTimeout)
	defer cancel()
	list, err := a.cfg.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("%w: node agents: listing pods in %s: %v", authn.ErrUnavailable, namespace, err)
	}
	for i := range list.Items {
		if match(&list.Items[i]) {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

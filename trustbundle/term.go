package trustbundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshca/meshca/internal/kubesync"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// ctbKey is the work-queue key of the ClusterTrustBundle; other keys are namespace names, which cannot
// contain ":".
const ctbKey = ":clustertrustbundle"

const managedBy = "meshca"

// ctbState is the ClusterTrustBundle API version in use and the informer on the bundle.
type ctbState struct {
	gvr schema.GroupVersionResource
	inf cache.SharedIndexInformer
}

// leaderTerm publishes while this replica leads. A new one is built for every term, so nothing it caches
// outlives the leadership it was built under.
type leaderTerm struct {
	p       *Publisher
	queue   *kubesync.Queue
	cms     *kubesync.Fanout         // nil when the ConfigMaps are disabled
	ctb     atomic.Pointer[ctbState] // nil until the API is discovered and the bundle's informer has synced
	bundle  atomic.Pointer[[]byte]   // nil until the source has given valid roots
	lastErr string                   // the source's last error, logged once
}

// run watches what it writes, starts the writers and polls the source until ctx ends.
func (t *leaderTerm) run(ctx context.Context) {
	t.queue = kubesync.NewQueue()
	defer t.queue.ShutDown()
	var informers sync.WaitGroup
	defer informers.Wait()
	start := func(inf cache.SharedIndexInformer) { informers.Go(func() { inf.RunWithContext(ctx) }) }
	if !t.startConfigMaps(ctx, start) {
		return
	}
	defer t.queue.Start(ctx, 4, kubesync.Worker{Sync: t.sync, Failed: t.failed})()
	t.follow(ctx, start)
}

// startConfigMaps starts the informers of the istio-ca-root-cert ConfigMaps, unless they are disabled, and
// waits until they have synced. It reports false when the term ended first.
func (t *leaderTerm) startConfigMaps(ctx context.Context, start func(cache.SharedIndexInformer)) bool {
	p := t.p
	if p.cfg.DisableConfigMaps {
		return true
	}
	t.cms = kubesync.NewFanout(p.kube, kubesync.ConfigMapSpec{
		Name: p.cfg.configMapName, Key: p.cfg.configMapKey, FieldManager: managedBy, NamespaceSelector: p.sel.String(),
		Labels: map[string]string{ManagedByLabel: managedBy},
		Wrote: func(ns, op string) {
			p.m.writes.WithLabelValues("configmap", op).Inc()
			if op == "update" {
				p.cfg.Logger.Debug("trust bundle ConfigMap updated", "namespace", ns) // one per namespace: Debug
			}
		},
	}, t.queue)
	var synced []cache.InformerSynced
	for _, inf := range t.cms.Informers() {
		start(inf)
		synced = append(synced, inf.HasSynced)
	}
	return cache.WaitForCacheSync(ctx.Done(), synced...)
}

// follow polls the source every PollInterval and, until the ClusterTrustBundle API is found, looks for it
// once a minute, until ctx ends.
func (t *leaderTerm) follow(ctx context.Context, start func(cache.SharedIndexInformer)) {
	p := t.p
	tick := time.NewTicker(p.cfg.PollInterval)
	defer tick.Stop()
	ctbPending, nextDiscovery := !p.cfg.DisableClusterTrustBundle, time.Time{}
	for {
		if ctbPending && !time.Now().Before(nextDiscovery) {
			ctbPending = !t.startClusterTrustBundle(ctx, start)
			nextDiscovery = time.Now().Add(time.Minute)
		}
		t.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// startClusterTrustBundle discovers the ClusterTrustBundle API and starts the bundle's informer. It reports
// false when the API is not served or discovery failed, to be tried again later in the term.
func (t *leaderTerm) startClusterTrustBundle(ctx context.Context, start func(cache.SharedIndexInformer)) bool {
	p := t.p
	gvr, err := t.discover(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.m.errors.WithLabelValues("clustertrustbundle").Inc()
			p.cfg.Logger.Error("not publishing a ClusterTrustBundle; trying again in a minute", "error", err)
		}
		return false
	}
	sel := kubesync.ByName(p.ClusterTrustBundleName())
	inf := dynamicinformer.NewFilteredDynamicInformer(p.dyn, gvr, "", 0, cache.Indexers{}, func(o *metav1.ListOptions) {
		o.FieldSelector = sel.Field
	}).Informer()
	t.queue.Watch(inf, func(metav1.Object) string { return ctbKey })
	start(inf)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return true // the term is over
	}
	t.ctb.Store(&ctbState{gvr: gvr, inf: inf})
	t.queue.Add(ctbKey)
	return true
}

// discover returns the newest ClusterTrustBundle API the server serves: v1 (1.37+) or v1beta1 (1.33–1.36,
// when enabled with --runtime-config).
func (t *leaderTerm) discover(ctx context.Context) (schema.GroupVersionResource, error) {
	var errs []error
	for _, v := range []string{"v1", "v1beta1"} {
		gv := schema.GroupVersion{Group: "certificates.k8s.io", Version: v}
		list, err := t.p.kube.Discovery().ServerResourcesForGroupVersion(gv.String())
		if err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("discovering %s: %w", gv, err))
			}
			continue
		}
		for _, r := range list.APIResources {
			if r.Name == "clustertrustbundles" {
				return gv.WithResource("clustertrustbundles"), nil
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return schema.GroupVersionResource{}, fmt.Errorf("trustbundle: %w", err)
	}
	return schema.GroupVersionResource{}, errors.New("trustbundle: the API server serves no ClusterTrustBundle API " +
		"(certificates.k8s.io/v1 from Kubernetes 1.37, or v1beta1 on 1.33-1.36 with --runtime-config=" +
		"certificates.k8s.io/v1beta1/clustertrustbundles=true and the ClusterTrustBundle feature gate): " +
		"enable it, or set disableClusterTrustBundle")
}

// poll reads the source and, when the bundle changed, queues every object for an update.
func (t *leaderTerm) poll(ctx context.Context) {
	p := t.p
	roots, err := p.cfg.Source.Roots(ctx)
	var bundle []byte
	if err == nil {
		bundle, err = Encode(roots)
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		p.m.errors.WithLabelValues("source").Inc()
		level := slog.LevelError
		if err.Error() == t.lastErr { // the same failure every poll: say it once, count it always
			level = slog.LevelDebug
		}
		t.lastErr = err.Error()
		p.cfg.Logger.Log(ctx, level, "trust bundle not updated: the roots source failed; the published bundle stays",
			"error", err)
		return
	}
	t.lastErr = ""
	if old := t.bundle.Load(); old != nil && bytes.Equal(*old, bundle) {
		return
	}
	t.bundle.Store(&bundle)
	fps := fingerprints(bundle)
	p.m.roots.Set(float64(len(fps)))
	p.cfg.Logger.Info("trust bundle to publish", "roots", len(fps), "sha256_prefixes", fps)
	if t.ctb.Load() != nil {
		t.queue.Add(ctbKey)
	}
	if t.cms != nil {
		for _, name := range t.cms.Namespaces() {
			t.queue.Add(name)
		}
	}
}

// sync brings the object of key up to date with the bundle, once there is one (poll queues every object
// again when the source first gives roots).
func (t *leaderTerm) sync(ctx context.Context, key string) error {
	bundle := t.bundle.Load()
	if bundle == nil {
		return nil
	}
	if key != ctbKey {
		return t.cms.Sync(ctx, key, *bundle)
	}
	ctb := t.ctb.Load()
	if ctb == nil {
		return nil // an informer event before the informer synced; queued again once it has
	}
	return t.syncClusterTrustBundle(ctx, ctb, *bundle)
}

func (t *leaderTerm) failed(key string, retries int, err error) {
	target := "configmap"
	if key == ctbKey {
		target = "clustertrustbundle"
	}
	t.p.m.errors.WithLabelValues(target).Inc()
	t.p.cfg.Logger.Error("trust bundle publish failed; retrying", "target", target, "key", key,
		"retries", retries, "error", err)
}

func (t *leaderTerm) syncClusterTrustBundle(ctx context.Context, ctb *ctbState, bundle []byte) error {
	name := t.p.ClusterTrustBundleName()
	client := t.p.dyn.Resource(ctb.gvr)
	obj, ok, err := ctb.inf.GetStore().GetByKey(name)
	if err != nil {
		return err
	}
	if !ok {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": ctb.gvr.GroupVersion().String(),
			"kind":       "ClusterTrustBundle",
			"metadata":   map[string]any{"name": name, "labels": map[string]any{ManagedByLabel: managedBy}},
			"spec":       map[string]any{"signerName": t.p.cfg.SignerName, "trustBundle": string(bundle)},
		}}
		_, err := client.Create(ctx, u, metav1.CreateOptions{FieldManager: managedBy})
		return t.wroteClusterTrustBundle(ctb, name, "create", err)
	}
	u := obj.(*unstructured.Unstructured)
	got, _, _ := unstructured.NestedString(u.Object, "spec", "trustBundle")
	if got == string(bundle) && u.GetLabels()[ManagedByLabel] == managedBy {
		return nil
	}
	u = u.DeepCopy()
	if err := unstructured.SetNestedField(u.Object, string(bundle), "spec", "trustBundle"); err != nil {
		return err
	}
	l := u.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[ManagedByLabel] = managedBy
	u.SetLabels(l)
	_, err = client.Update(ctx, u, metav1.UpdateOptions{FieldManager: managedBy})
	return t.wroteClusterTrustBundle(ctb, name, "update", err)
}

// wroteClusterTrustBundle counts and logs a write (op "create" or "update") of the ClusterTrustBundle, or
// explains its failure err, with the RBAC meshca needs when the API server forbade it.
func (t *leaderTerm) wroteClusterTrustBundle(ctb *ctbState, name, op string, err error) error {
	if err != nil {
		doing := "creating"
		if op == "update" {
			doing = "updating"
		}
		return fmt.Errorf("%s ClusterTrustBundle %s (%s): %w%s", doing, name, ctb.gvr.Version, err,
			attestHint(err, t.p.cfg.SignerName))
	}
	t.p.m.writes.WithLabelValues("clustertrustbundle", op).Inc()
	t.p.cfg.Logger.Info("ClusterTrustBundle "+op+"d", "name", name, "version", ctb.gvr.Version)
	return nil
}

func attestHint(err error, signer string) string {
	if !apierrors.IsForbidden(err) {
		return ""
	}
	domain, _, _ := strings.Cut(signer, "/")
	return fmt.Sprintf(" (meshca needs create and update on clustertrustbundles and the verb \"attest\" on "+
		"signers.certificates.k8s.io named %q or %q)", signer, domain+"/*")
}

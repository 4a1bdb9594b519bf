package trustbundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
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
	queue   workqueue.TypedRateLimitingInterface[string]
	ns      cache.SharedIndexInformer
	cms     cache.SharedIndexInformer
	ctb     atomic.Pointer[ctbState] // nil until the API is discovered and the bundle's informer has synced
	bundle  atomic.Pointer[[]byte]   // nil until the source has given valid roots
	lastErr string                   // the source's last error, logged once
}

func (t *leaderTerm) run(ctx context.Context) {
	p := t.p
	t.queue = workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second)))
	defer t.queue.ShutDown()
	var informers sync.WaitGroup
	defer informers.Wait()
	start := func(inf cache.SharedIndexInformer) { informers.Go(func() { inf.RunWithContext(ctx) }) }
	var synced []cache.InformerSynced
	if !p.cfg.DisableConfigMaps {
		nsClient, cmClient := p.kube.CoreV1().Namespaces(), p.kube.CoreV1().ConfigMaps("")
		sel := p.sel.String()
		t.ns = cache.NewSharedIndexInformer(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.LabelSelector = sel
				return nsClient.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.LabelSelector = sel
				return nsClient.Watch(ctx, o)
			},
		}, &corev1.Namespace{}, 0, cache.Indexers{})
		name := fields.OneTermEqualSelector("metadata.name", ConfigMapName).String()
		t.cms = cache.NewSharedIndexInformer(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.FieldSelector = name
				return cmClient.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.FieldSelector = name
				return cmClient.Watch(ctx, o)
			},
		}, &corev1.ConfigMap{}, 0, cache.Indexers{})
		t.handle(t.ns, func(obj any) string { return obj.(metav1.Object).GetName() })
		t.handle(t.cms, func(obj any) string { return obj.(metav1.Object).GetNamespace() })
		synced = append(synced, t.ns.HasSynced, t.cms.HasSynced)
		start(t.ns)
		start(t.cms)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	var workers sync.WaitGroup
	defer workers.Wait()
	for range 4 {
		workers.Go(func() {
			for t.processNext(ctx) {
			}
		})
	}
	go func() { <-ctx.Done(); t.queue.ShutDown() }()
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
	name := p.ClusterTrustBundleName()
	inf := dynamicinformer.NewFilteredDynamicInformer(p.dyn, gvr, "", 0, cache.Indexers{}, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	}).Informer()
	t.handle(inf, func(any) string { return ctbKey })
	start(inf)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return true // the term is over
	}
	t.ctb.Store(&ctbState{gvr: gvr, inf: inf})
	t.queue.Add(ctbKey)
	return true
}

// handle queues key(obj) on every event of inf. Tombstones of deleted objects carry the last known object.
func (t *leaderTerm) handle(inf cache.SharedIndexInformer, key func(any) string) {
	enqueue := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if _, ok := obj.(metav1.Object); ok {
			t.queue.Add(key(obj))
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	})
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
	if t.ns != nil {
		for _, name := range t.ns.GetStore().ListKeys() {
			t.queue.Add(name)
		}
	}
}

func (t *leaderTerm) processNext(ctx context.Context) bool {
	key, shutdown := t.queue.Get()
	if shutdown {
		return false
	}
	defer t.queue.Done(key)
	if ctx.Err() != nil {
		return false
	}
	bundle := t.bundle.Load()
	if bundle == nil {
		t.queue.Forget(key) // queued again by poll once there are roots
		return true
	}
	var err error
	target := "configmap"
	if key == ctbKey {
		target = "clustertrustbundle"
		ctb := t.ctb.Load()
		if ctb == nil {
			t.queue.Forget(key) // an informer event before the informer synced; queued again once it has
			return true
		}
		err = t.syncClusterTrustBundle(ctx, ctb, *bundle)
	} else {
		err = t.syncConfigMap(ctx, key, *bundle)
	}
	switch {
	case err == nil:
		t.queue.Forget(key)
	case ctx.Err() != nil:
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		t.queue.AddRateLimited(key) // the informer is behind a concurrent write; retry with its next state
	default:
		t.p.m.errors.WithLabelValues(target).Inc()
		t.p.cfg.Logger.Error("trust bundle publish failed; retrying", "target", target, "key", key,
			"retries", t.queue.NumRequeues(key), "error", err)
		t.queue.AddRateLimited(key)
	}
	return true
}

func (t *leaderTerm) syncConfigMap(ctx context.Context, ns string, bundle []byte) error {
	obj, ok, err := t.ns.GetStore().GetByKey(ns)
	if err != nil || !ok {
		return err // deleted, or not selected: nothing to do
	}
	if obj.(*corev1.Namespace).Status.Phase == corev1.NamespaceTerminating {
		return nil
	}
	want := map[string]string{ConfigMapKey: string(bundle)}
	client := t.p.kube.CoreV1().ConfigMaps(ns)
	obj, ok, err = t.cms.GetStore().GetByKey(ns + "/" + ConfigMapName)
	if err != nil {
		return err
	}
	if !ok {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name:      ConfigMapName,
				Namespace: ns,
				Labels:    map[string]string{ManagedByLabel: managedBy},
			},
			Data: want,
		}
		_, err := client.Create(ctx, cm, metav1.CreateOptions{FieldManager: managedBy})
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("creating ConfigMap %s/%s: %w", ns, ConfigMapName, err)
		}
		t.p.m.writes.WithLabelValues("configmap", "create").Inc()
		return nil
	}
	cm := obj.(*corev1.ConfigMap)
	if maps.Equal(cm.Data, want) && len(cm.BinaryData) == 0 && cm.Labels[ManagedByLabel] == managedBy {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data, cm.BinaryData = want, nil
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[ManagedByLabel] = managedBy
	if _, err := client.Update(ctx, cm, metav1.UpdateOptions{FieldManager: managedBy}); err != nil {
		return fmt.Errorf("updating ConfigMap %s/%s: %w", ns, ConfigMapName, err)
	}
	t.p.m.writes.WithLabelValues("configmap", "update").Inc()
	t.p.cfg.Logger.Debug("trust bundle ConfigMap updated", "namespace", ns) // one per namespace: Debug
	return nil
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
		if _, err := client.Create(ctx, u, metav1.CreateOptions{FieldManager: managedBy}); err != nil {
			return fmt.Errorf(
				"creating ClusterTrustBundle %s (%s): %w%s",
				name,
				ctb.gvr.Version,
				err,
				attestHint(err, t.p.cfg.SignerName),
			)
		}
		t.p.m.writes.WithLabelValues("clustertrustbundle", "create").Inc()
		t.p.cfg.Logger.Info("ClusterTrustBundle created", "name", name, "version", ctb.gvr.Version)
		return nil
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
	if _, err := client.Update(ctx, u, metav1.UpdateOptions{FieldManager: managedBy}); err != nil {
		return fmt.Errorf(
			"updating ClusterTrustBundle %s (%s): %w%s",
			name,
			ctb.gvr.Version,
			err,
			attestHint(err, t.p.cfg.SignerName),
		)
	}
	t.p.m.writes.WithLabelValues("clustertrustbundle", "update").Inc()
	t.p.cfg.Logger.Info("ClusterTrustBundle updated", "name", name, "version", ctb.gvr.Version)
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

package kubepublish

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/meshca/meshca/crl"
)

// leaderTerm publishes while this replica leads; a new one is built for every term.
type leaderTerm struct {
	p     *Publisher
	queue workqueue.TypedRateLimitingInterface[string]
	ns    cache.SharedIndexInformer
	cms   cache.SharedIndexInformer
	pem   atomic.Pointer[[]byte] // nil until the source is ready
}

func (t *leaderTerm) run(ctx context.Context) {
	p := t.p
	t.queue = workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second)))
	defer t.queue.ShutDown()
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
	t.handle(t.ns, func(o metav1.Object) string { return o.GetName() })
	t.handle(t.cms, func(o metav1.Object) string { return o.GetNamespace() })
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { t.ns.RunWithContext(ctx) })
	wg.Go(func() { t.cms.RunWithContext(ctx) })
	if !cache.WaitForCacheSync(ctx.Done(), t.ns.HasSynced, t.cms.HasSynced) {
		return
	}
	for range 4 {
		wg.Go(func() {
			for t.processNext(ctx) {
			}
		})
	}
	go func() { <-ctx.Done(); t.queue.ShutDown() }()
	for {
		changed := p.cfg.Source.Changed()
		if data, ok := p.cfg.Source.PEM(); ok {
			if old := t.pem.Load(); old == nil || !bytes.Equal(*old, data) {
				t.pem.Store(&data)
				for _, ns := range t.ns.GetStore().ListKeys() {
					t.queue.Add(ns)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// handle queues the namespace of every object an informer reports; tombstones carry the last known object.
func (t *leaderTerm) handle(inf cache.SharedIndexInformer, key func(metav1.Object) string) {
	enqueue := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if o, ok := obj.(metav1.Object); ok {
			t.queue.Add(key(o))
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	})
}

func (t *leaderTerm) processNext(ctx context.Context) bool {
	ns, shutdown := t.queue.Get()
	if shutdown {
		return false
	}
	defer t.queue.Done(ns)
	if ctx.Err() != nil {
		return false
	}
	data := t.pem.Load()
	if data == nil {
		t.queue.Forget(ns) // queued again once the source is ready
		return true
	}
	err := t.sync(ctx, ns, *data)
	switch {
	case err == nil:
		t.queue.Forget(ns)
	case ctx.Err() != nil:
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		t.queue.AddRateLimited(ns) // the informer is behind a concurrent write; retry with its next state
	default:
		t.p.m.PublishError(crl.TargetConfigMap)
		t.p.cfg.Logger.Error("writing the istio-ca-crl ConfigMap failed; retrying", "namespace", ns,
			"retries", t.queue.NumRequeues(ns), "error", err)
		t.queue.AddRateLimited(ns)
	}
	return true
}

// sync makes the ConfigMap of ns hold data, with the labels Istio and meshca expect; other labels and
// annotations are kept.
func (t *leaderTerm) sync(ctx context.Context, ns string, data []byte) error {
	obj, ok, err := t.ns.GetStore().GetByKey(ns)
	if err != nil || !ok {
		return err // deleted, or not selected
	}
	if obj.(*corev1.Namespace).Status.Phase == corev1.NamespaceTerminating {
		return nil
	}
	want := map[string]string{ConfigMapKey: string(data)}
	client := t.p.kube.CoreV1().ConfigMaps(ns)
	obj, ok, err = t.cms.GetStore().GetByKey(ns + "/" + ConfigMapName)
	if err != nil {
		return err
	}
	if !ok {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: ns,
				Labels: map[string]string{IstioConfigLabel: "true", ManagedByLabel: "meshca"}},
			Data: want,
		}
		_, err := client.Create(ctx, cm, metav1.CreateOptions{FieldManager: "meshca"})
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("creating ConfigMap %s/%s: %w", ns, ConfigMapName, err)
		}
		t.p.writes.WithLabelValues("create").Inc()
		return nil
	}
	cm := obj.(*corev1.ConfigMap)
	if maps.Equal(cm.Data, want) && len(cm.BinaryData) == 0 && cm.Labels[IstioConfigLabel] == "true" &&
		cm.Labels[ManagedByLabel] == "meshca" {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data, cm.BinaryData = want, nil
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[IstioConfigLabel], cm.Labels[ManagedByLabel] = "true", "meshca"
	if _, err := client.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "meshca"}); err != nil {
		return fmt.Errorf("updating ConfigMap %s/%s: %w", ns, ConfigMapName, err)
	}
	t.p.writes.WithLabelValues("update").Inc()
	return nil
}

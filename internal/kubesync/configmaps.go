package kubesync

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ConfigMapSpec is the ConfigMap a Fanout keeps in every selected namespace.
type ConfigMapSpec struct {
	// Name and Key name the ConfigMap and its one data key.
	Name, Key string
	// Labels are set on the ConfigMap; other labels and annotations it has are kept.
	Labels map[string]string
	// FieldManager names meshca in the writes.
	FieldManager string
	// NamespaceSelector is a label selector for the namespaces; empty selects all.
	NamespaceSelector string
	// Wrote, when set, is told of every write: operation is "create" or "update".
	Wrote func(ns, operation string)
}

// Fanout keeps one ConfigMap in every selected namespace equal to the content it is given. It watches the
// namespaces and the ConfigMaps of that name, and queues a namespace whenever either changes.
type Fanout struct {
	spec   ConfigMapSpec
	client kubernetes.Interface
	ns     cache.SharedIndexInformer
	cms    cache.SharedIndexInformer
}

// NewFanout builds the informers of a Fanout whose events go to q, keyed by namespace name. Start them
// (Informers) before syncing.
func NewFanout(client kubernetes.Interface, spec ConfigMapSpec, q *Queue) *Fanout {
	f := &Fanout{spec: spec, client: client,
		ns:  NewInformer(client.CoreV1().Namespaces(), Selector{Label: spec.NamespaceSelector}, &corev1.Namespace{}),
		cms: NewInformer(client.CoreV1().ConfigMaps(""), ByName(spec.Name), &corev1.ConfigMap{}),
	}
	q.Watch(f.ns, func(o metav1.Object) string { return o.GetName() })
	q.Watch(f.cms, func(o metav1.Object) string { return o.GetNamespace() })
	return f
}

// Informers returns the informers to run.
func (f *Fanout) Informers() []cache.SharedIndexInformer {
	return []cache.SharedIndexInformer{f.ns, f.cms}
}

// Namespaces returns the names of the selected namespaces the informer knows.
func (f *Fanout) Namespaces() []string { return f.ns.GetStore().ListKeys() }

// Sync makes the ConfigMap of ns hold data under the spec's key, with the spec's labels. A namespace that is
// gone, no longer selected or terminating needs nothing.
func (f *Fanout) Sync(ctx context.Context, ns string, data []byte) error {
	obj, ok, err := f.ns.GetStore().GetByKey(ns)
	if err != nil || !ok {
		return err // deleted, or not selected
	}
	if obj.(*corev1.Namespace).Status.Phase == corev1.NamespaceTerminating {
		return nil
	}
	want := map[string]string{f.spec.Key: string(data)}
	obj, ok, err = f.cms.GetStore().GetByKey(ns + "/" + f.spec.Name)
	if err != nil {
		return err
	}
	if !ok {
		return f.create(ctx, ns, want)
	}
	cm := obj.(*corev1.ConfigMap)
	if maps.Equal(cm.Data, want) && len(cm.BinaryData) == 0 && f.labelled(cm.Labels) {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data, cm.BinaryData = want, nil
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	maps.Copy(cm.Labels, f.spec.Labels)
	_, err = f.client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: f.spec.FieldManager})
	if err != nil {
		return fmt.Errorf("updating ConfigMap %s/%s: %w", ns, f.spec.Name, err)
	}
	f.wrote(ns, "update")
	return nil
}

func (f *Fanout) create(ctx context.Context, ns string, data map[string]string) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: f.spec.Name, Namespace: ns, Labels: maps.Clone(f.spec.Labels)},
		Data:       data,
	}
	_, err := f.client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{FieldManager: f.spec.FieldManager})
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating ConfigMap %s/%s: %w", ns, f.spec.Name, err)
	}
	f.wrote(ns, "create")
	return nil
}

func (f *Fanout) labelled(have map[string]string) bool {
	for k, v := range f.spec.Labels {
		if have[k] != v {
			return false
		}
	}
	return true
}

func (f *Fanout) wrote(ns, op string) {
	if f.spec.Wrote != nil {
		f.spec.Wrote(ns, op)
	}
}

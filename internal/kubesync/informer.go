package kubesync

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// ListWatcher is the List and Watch of a typed client, such as CoreV1().Namespaces() or
// CoreV1().Secrets(ns).
type ListWatcher[L runtime.Object] interface {
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// Selector restricts what an informer lists and watches; an empty field selects everything.
type Selector struct {
	Label string
	Field string
}

// ByName selects the object called name with a metadata.name field selector, so RBAC may grant list and
// watch on that resource name only.
func ByName(name string) Selector {
	return Selector{Field: fields.OneTermEqualSelector("metadata.name", name).String()}
}

// NewInformer returns an informer, without periodic resync, on the objects of client that sel selects. obj
// is an empty object of the listed type, e.g. &corev1.Secret{}.
func NewInformer[L runtime.Object](client ListWatcher[L], sel Selector, obj runtime.Object) cache.SharedIndexInformer {
	restrict := func(o *metav1.ListOptions) {
		if sel.Label != "" {
			o.LabelSelector = sel.Label
		}
		if sel.Field != "" {
			o.FieldSelector = sel.Field
		}
	}
	return cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			restrict(&o)
			return client.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			restrict(&o)
			return client.Watch(ctx, o)
		},
	}, obj, 0, cache.Indexers{})
}

// WriterConfig returns a copy of kc for a publisher that writes an object per namespace: when kc sets no rate
// limit, 50 requests per second (burst 100) instead of client-go's 5, which would take minutes to roll a change
// out to a thousand namespaces; 50 matches what cluster controllers commonly use.
func WriterConfig(kc *rest.Config) *rest.Config {
	kc = rest.CopyConfig(kc)
	if kc.QPS == 0 && kc.RateLimiter == nil {
		kc.QPS, kc.Burst = 50, 100
	}
	return kc
}

package nslabels

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Cache holds the labels of every Namespace, following changes. It is safe for concurrent use.
type Cache struct {
	factory informers.SharedInformerFactory
	ns      cache.SharedIndexInformer
}

// New returns a Cache over client's Namespaces; Start runs it. meshca needs get, list and watch on
// namespaces.
func New(client kubernetes.Interface) *Cache {
	// Keep only names and labels: a cluster's namespaces are few, but their annotations can be large.
	strip := func(obj any) (any, error) {
		if n, ok := obj.(*corev1.Namespace); ok {
			return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels,
				ResourceVersion: n.ResourceVersion}}, nil
		}
		return obj, nil
	}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(strip))
	return &Cache{factory: f, ns: f.Core().V1().Namespaces().Informer()}
}

// Start runs the informer until ctx ends and waits, at most timeout, for its first full list.
func (c *Cache) Start(ctx context.Context, timeout time.Duration) error {
	c.factory.Start(ctx.Done())
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(wctx.Done(), c.ns.HasSynced) {
		return fmt.Errorf("nslabels: namespaces not listed within %s; check meshca's RBAC (list and watch "+
			"namespaces) and the API server", timeout)
	}
	return nil
}

// Labels returns the labels of namespace ns, and false when the namespace is not known.
func (c *Cache) Labels(ns string) (map[string]string, bool) {
	obj, ok, err := c.ns.GetStore().GetByKey(ns)
	if err != nil || !ok {
		return nil, false
	}
	n, ok := obj.(*corev1.Namespace)
	if !ok {
		return nil, false
	}
	if n.Labels == nil {
		return map[string]string{}, true
	}
	return n.Labels, true
}

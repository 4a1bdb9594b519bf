package kubescan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// Scanner keeps an Inventory current with the cluster's certificate Secrets and meshca's ConfigMaps.
type Scanner struct {
	cfg       Config
	informers []cache.SharedIndexInformer
}

// New checks cfg and prepares the informers; Run starts them.
func New(cfg Config) (*Scanner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Client == nil {
		return nil, errors.New("kubescan: Config.Client is nil")
	}
	if cfg.Inventory == nil {
		return nil, errors.New("kubescan: Config.Inventory is nil")
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Scanner{cfg: cfg}
	for _, w := range cfg.targets() {
		var obj runtime.Object = &corev1.Secret{}
		if w.configMap {
			obj = &corev1.ConfigMap{}
		}
		inf := cache.NewSharedIndexInformer(w.listWatch(cfg.Client), obj, 0, cache.Indexers{})
		if err := inf.SetTransform(stripKeys); err != nil {
			return nil, fmt.Errorf("kubescan: %s: %w", w.what, err)
		}
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    s.put,
			UpdateFunc: func(_, obj any) { s.put(obj) },
			DeleteFunc: s.delete,
		})
		if err != nil {
			return nil, fmt.Errorf("kubescan: %s: %w", w.what, err)
		}
		s.informers = append(s.informers, inf)
	}
	return s, nil
}

func (s *Scanner) put(obj any) {
	if set, ok := setOf(obj); ok {
		s.cfg.Inventory.Put(set)
	}
}

// delete forgets an object, unless another informer still holds it (a Secret that matched two selectors and
// lost one label).
func (s *Scanner) delete(obj any) {
	src, ok := sourceOf(obj)
	if !ok {
		return
	}
	for _, inf := range s.informers {
		if o, ok, _ := inf.GetStore().GetByKey(src.Namespace + "/" + src.Name); ok {
			if other, ok := sourceOf(o); ok && other == src {
				s.put(o)
				return
			}
		}
	}
	s.cfg.Inventory.Delete(src)
}

// Run starts the informers, which run until ctx ends, and returns once their first lists have completed, or
// with an error after SyncTimeout when they have not (RBAC, an unreachable API server); the informers then
// keep retrying in the background. Call it once.
func (s *Scanner) Run(ctx context.Context) error {
	for _, inf := range s.informers {
		go inf.RunWithContext(ctx)
	}
	syncCtx, cancel := context.WithTimeout(ctx, s.cfg.SyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), s.HasSynced) {
		return fmt.Errorf("kubescan: the first lists did not complete within %s: check that the API server is "+
			"reachable and that meshca may list and watch Secrets and the istio-ca-root-cert and istio-ca-crl "+
			"ConfigMaps (manifests/components/expiry-scanner)", s.cfg.SyncTimeout)
	}
	return nil
}

// HasSynced reports whether every informer has completed its first list.
func (s *Scanner) HasSynced() bool {
	for _, inf := range s.informers {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

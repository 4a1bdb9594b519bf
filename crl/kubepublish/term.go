package kubepublish

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"k8s.io/client-go/tools/cache"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/internal/kubesync"
)

// leaderTerm publishes while this replica leads; a new one is built for every term, so nothing it caches
// outlives the leadership it was built under.
type leaderTerm struct {
	p     *Publisher
	queue *kubesync.Queue
	cms   *kubesync.Fanout
	pem   atomic.Pointer[[]byte] // nil until the source is ready
}

// run watches the namespaces and ConfigMaps, starts the writers and then follows the source until ctx ends.
func (t *leaderTerm) run(ctx context.Context) {
	t.queue = kubesync.NewQueue()
	defer t.queue.ShutDown()
	t.cms = kubesync.NewFanout(t.p.kube, kubesync.ConfigMapSpec{
		Name: ConfigMapName, Key: ConfigMapKey, FieldManager: "meshca", NamespaceSelector: t.p.sel.String(),
		Labels: map[string]string{IstioConfigLabel: "true", ManagedByLabel: "meshca"},
		Wrote:  func(_, op string) { t.p.writes.WithLabelValues(op).Inc() },
	}, t.queue)
	var informers sync.WaitGroup
	defer informers.Wait()
	var synced []cache.InformerSynced
	for _, inf := range t.cms.Informers() {
		informers.Go(func() { inf.RunWithContext(ctx) })
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	defer t.queue.Start(ctx, 4, kubesync.Worker{Sync: t.sync, Failed: t.failed})()
	t.follow(ctx)
}

// follow queues every namespace whenever the source's content changes, until ctx ends.
func (t *leaderTerm) follow(ctx context.Context) {
	src := t.p.cfg.Source
	for {
		changed := src.Changed()
		if data, ok := src.PEM(); ok {
			if old := t.pem.Load(); old == nil || !bytes.Equal(*old, data) {
				t.pem.Store(&data)
				for _, ns := range t.cms.Namespaces() {
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

// sync makes the ConfigMap of ns hold the source's content, once there is one (follow queues every namespace
// again when the source becomes ready).
func (t *leaderTerm) sync(ctx context.Context, ns string) error {
	data := t.pem.Load()
	if data == nil {
		return nil
	}
	return t.cms.Sync(ctx, ns, *data)
}

func (t *leaderTerm) failed(ns string, retries int, err error) {
	t.p.m.PublishError(crl.TargetConfigMap)
	t.p.cfg.Logger.Error("writing the istio-ca-crl ConfigMap failed; retrying", "namespace", ns,
		"retries", retries, "error", err)
}

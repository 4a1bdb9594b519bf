package kubesync

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Queue is a rate-limited work queue of object keys: a key that fails is retried after 100ms, doubling up to
// 30s; one that succeeds is forgotten.
type Queue struct {
	q workqueue.TypedRateLimitingInterface[string]
}

// NewQueue returns an empty Queue; ShutDown it when done.
func NewQueue() *Queue {
	return &Queue{q: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second)))}
}

// Add queues key.
func (q *Queue) Add(key string) { q.q.Add(key) }

// ShutDown stops the workers once they finish the keys they hold.
func (q *Queue) ShutDown() { q.q.ShutDown() }

// Watch queues key(obj) on every event of inf. Tombstones of deleted objects carry the last known object.
func (q *Queue) Watch(inf cache.SharedIndexInformer, key func(metav1.Object) string) {
	enqueue := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if o, ok := obj.(metav1.Object); ok {
			q.q.Add(key(o))
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	})
}

// Worker says what to do with a key.
type Worker struct {
	// Sync brings the object of key up to date. A nil error forgets the key, so Sync returns nil for a key it
	// cannot work on yet and queues it again itself once it can.
	Sync func(ctx context.Context, key string) error
	// Failed is told of every error but a write conflict (the informer is behind a concurrent write, and the
	// retry uses its next state) and those after ctx ended; retries counts the earlier failures of key.
	Failed func(key string, retries int, err error)
}

// Start runs n goroutines working the queue until ctx ends, and shuts the queue down when it does. wait
// returns once every worker has stopped.
func (q *Queue) Start(ctx context.Context, n int, w Worker) (wait func()) {
	var workers sync.WaitGroup
	for range n {
		workers.Go(func() {
			for q.processNext(ctx, w) {
			}
		})
	}
	go func() { <-ctx.Done(); q.q.ShutDown() }()
	return workers.Wait
}

func (q *Queue) processNext(ctx context.Context, w Worker) bool {
	key, shutdown := q.q.Get()
	if shutdown {
		return false
	}
	defer q.q.Done(key)
	if ctx.Err() != nil {
		return false
	}
	err := w.Sync(ctx, key)
	switch {
	case err == nil:
		q.q.Forget(key)
	case ctx.Err() != nil:
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		q.q.AddRateLimited(key) // the informer is behind a concurrent write; retry with its next state
	default:
		w.Failed(key, q.q.NumRequeues(key), err)
		q.q.AddRateLimited(key)
	}
	return true
}

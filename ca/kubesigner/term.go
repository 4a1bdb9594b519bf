package kubesigner

import (
	"context"
	"sync"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/meshca/meshca/ca"
)

// term signs while this replica leads; a new one is built for every term, so a new leader starts from a fresh
// list of the requests and never acts on a cache filled under another leader.
type term struct {
	s     *Signer
	queue workqueue.TypedRateLimitingInterface[string]
	csrs  cache.SharedIndexInformer
}

func (t *term) run(ctx context.Context) {
	t.queue = workqueue.NewTypedRateLimitingQueue(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 30*time.Second))
	defer t.queue.ShutDown()
	client := t.s.kube.CertificatesV1().CertificateSigningRequests()
	t.csrs = cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.Watch(ctx, o)
		},
	}, &certv1.CertificateSigningRequest{}, 0, cache.Indexers{})
	_ = t.csrs.SetTransform(dropManagedFields)
	enqueue := func(obj any) {
		if r, ok := obj.(*certv1.CertificateSigningRequest); ok && pending(r, t.s.cfg.Router) {
			t.queue.Add(r.Name)
		}
	}
	_, _ = t.csrs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { t.csrs.RunWithContext(ctx) })
	if !t.s.cfg.DisableCABundle {
		wg.Go(func() { t.publishCABundle(ctx) })
	}
	if !cache.WaitForCacheSync(ctx.Done(), t.csrs.HasSynced) {
		return
	}
	go func() { <-ctx.Done(); t.queue.ShutDown() }()
	for range t.s.cfg.Workers {
		wg.Go(func() {
			for t.processNext(ctx) {
			}
		})
	}
}

// dropManagedFields keeps the cache small: managed fields are never read.
func dropManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

func (t *term) processNext(ctx context.Context) bool {
	name, shutdown := t.queue.Get()
	if shutdown {
		return false
	}
	defer t.queue.Done(name)
	if ctx.Err() != nil {
		return false
	}
	obj, ok, err := t.csrs.GetStore().GetByKey(name)
	if err != nil || !ok {
		t.queue.Forget(name) // deleted
		return true
	}
	r := obj.(*certv1.CertificateSigningRequest)
	if !pending(r, t.s.cfg.Router) {
		t.queue.Forget(name)
		return true
	}
	if retry := t.answer(ctx, r); retry && ctx.Err() == nil {
		t.queue.AddRateLimited(name)
	} else {
		t.queue.Forget(name)
	}
	return true
}

// answer signs r or marks it Failed, and reports whether it must be tried again.
func (t *term) answer(ctx context.Context, r *certv1.CertificateSigningRequest) (retry bool) {
	log := t.s.cfg.Logger.With("csr", ca.Bounded(r.Name), "signer", ca.Bounded(r.Spec.SignerName))
	res, err := t.s.cfg.Issuer.IssueDelegated(ctx, delegated(r, t.s.cfg.Requesters, t.s.cfg.Router))
	class := ca.Classify(err)
	result := ResultSigned
	r = r.DeepCopy()
	switch {
	case err == nil:
		r.Status.Certificate = chainPEM(res.Chain)
	case class.Outcome == ca.OutcomeRejected && class.Reason != ca.Classify(ca.ErrRateLimited).Reason:
		result = ResultFailed
		c := failedCondition(class, err)
		c.LastUpdateTime, c.LastTransitionTime = metav1.Now(), metav1.Now()
		r.Status.Conditions = append(r.Status.Conditions, c)
	default:
		log.Warn("signing a CertificateSigningRequest failed; retrying", "reason", class.Reason, "error", err)
		t.s.count.WithLabelValues(r.Spec.SignerName, ResultRetry).Inc()
		return true
	}
	_, err = t.s.kube.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, r,
		metav1.UpdateOptions{FieldManager: "meshca"})
	switch {
	case err == nil:
		t.s.count.WithLabelValues(r.Spec.SignerName, result).Inc()
		return false
	case apierrors.IsNotFound(err):
		return false // deleted meanwhile (istiod gave up); nothing to answer
	case apierrors.IsConflict(err):
		// Changed meanwhile; the informer brings the new version, and pending decides again.
	default:
		log.Error("writing a CertificateSigningRequest's status failed; retrying", "error", err)
	}
	t.s.count.WithLabelValues(r.Spec.SignerName, ResultRetry).Inc()
	return true
}

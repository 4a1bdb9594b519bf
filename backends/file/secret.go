package file

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/cache"

	"github.com/meshca/meshca/internal/kubesync"
)

// secretWatch keeps the latest state of one Secret through an informer restricted to that object (a
// metadata.name field selector, so RBAC may grant get/list/watch on that resourceName only).
type secretWatch struct {
	ns, name string
	informer cache.SharedIndexInformer
	stopped  chan struct{}
}

func splitSecret(ref string) (ns, name string, err error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return "", "", fmt.Errorf("file: secret %q must be \"namespace/name\", e.g. \"istio-system/cacerts\"", ref)
	}
	return ns, name, nil
}

// startSecretWatch starts the informer and waits until it has listed the Secret (or its absence) once.
func startSecretWatch(ctx context.Context, cfg Config) (*secretWatch, error) {
	ns, name, err := splitSecret(cfg.Secret)
	if err != nil {
		return nil, err
	}
	secrets := cfg.Kube.CoreV1().Secrets(ns)
	w := &secretWatch{ns: ns, name: name, stopped: make(chan struct{}),
		informer: kubesync.NewInformer(secrets, kubesync.ByName(name), &corev1.Secret{})}
	go func() {
		defer close(w.stopped)
		w.informer.RunWithContext(ctx)
	}()
	syncCtx, cancel := context.WithTimeout(ctx, cfg.SecretSyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), w.informer.HasSynced) {
		return nil, fmt.Errorf("file: reading secret %s: no answer from the API server within %s: check that it is "+
			"reachable and that meshca may get, list and watch this Secret (RBAC)", cfg.Secret, cfg.SecretSyncTimeout)
	}
	return w, nil
}

// files returns the cacerts files held in the Secret's data, keyed by file name.
func (w *secretWatch) files() (map[string][]byte, error) {
	obj, ok, err := w.informer.GetStore().GetByKey(w.ns + "/" + w.name)
	if err != nil {
		return nil, fmt.Errorf("%w: secret %s/%s: %v", ErrInvalidCA, w.ns, w.name, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: secret %s/%s does not exist: create it with the keys %s, %s, %s and %s",
			ErrInvalidCA, w.ns, w.name, CACertFile, CAKeyFile, CertChainFile, RootCertFile)
	}
	s := obj.(*corev1.Secret)
	files := map[string][]byte{}
	for _, name := range cacertsFiles {
		if b, ok := s.Data[name]; ok {
			files[name] = b
		}
	}
	return files, nil
}

// run calls reload on every change of the Secret (including its deletion, which reload refuses) until ctx ends.
func (w *secretWatch) run(ctx context.Context, reload func()) {
	reg, err := w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { reload() },
		UpdateFunc: func(any, any) { reload() },
		DeleteFunc: func(any) { reload() },
	})
	if err == nil {
		defer func() { _ = w.informer.RemoveEventHandler(reg) }()
	}
	<-ctx.Done()
	w.wait()
}

// wait returns when the informer has stopped; its context must have ended.
func (w *secretWatch) wait() {
	select {
	case <-w.stopped:
	case <-time.After(10 * time.Second):
	}
}

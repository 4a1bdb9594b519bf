package kubesigner

import (
	"bytes"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CABundleKey is the key of the CA bundle ConfigMap: istiod reads ./etc/external-ca-cert/root-cert.pem in RA
// mode, so mounting the ConfigMap at /etc/external-ca-cert gives it meshca's roots.
const CABundleKey = "root-cert.pem"

// publishCABundle keeps the CA bundle ConfigMap equal to the issuer's trust bundle while ctx lasts: it checks
// the bundle every PollInterval and the ConfigMap itself at least every resync, so an edit is put back.
func (t *term) publishCABundle(ctx context.Context) {
	const resync = time.Minute
	var written []byte
	var checked time.Time
	tick := time.NewTicker(t.s.cfg.PollInterval)
	defer tick.Stop()
	for {
		bundle, err := t.s.cfg.Issuer.TrustBundle(ctx)
		switch {
		case err != nil:
			t.s.cfg.Logger.Warn("reading the trust bundle for the CA bundle ConfigMap failed; retrying",
				"error", err)
		case !bytes.Equal(bundle, written) || time.Since(checked) > resync:
			if err := t.syncCABundle(ctx, bundle); err != nil {
				if ctx.Err() == nil {
					t.s.cfg.Logger.Error("writing the CA bundle ConfigMap failed; retrying", "configmap",
						t.s.cfg.LeaseNamespace+"/"+t.s.cfg.CABundleConfigMap, "error", err)
				}
				written = nil
			} else {
				written, checked = bundle, time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (t *term) syncCABundle(ctx context.Context, bundle []byte) error {
	client := t.s.kube.CoreV1().ConfigMaps(t.s.cfg.LeaseNamespace)
	name := t.s.cfg.CABundleConfigMap
	want := map[string]string{CABundleKey: string(bundle)}
	cm, err := client.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: t.s.cfg.LeaseNamespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "meshca"}}, Data: want}
		if _, err := client.Create(ctx, cm, metav1.CreateOptions{FieldManager: "meshca"}); err != nil {
			return fmt.Errorf("creating ConfigMap %s: %w", name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading ConfigMap %s: %w", name, err)
	}
	if cm.Data[CABundleKey] == string(bundle) && len(cm.Data) == 1 && len(cm.BinaryData) == 0 {
		return nil
	}
	cm.Data, cm.BinaryData = want, nil
	if _, err := client.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "meshca"}); err != nil {
		return fmt.Errorf("updating ConfigMap %s: %w", name, err)
	}
	return nil
}

package trustbundle_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/trustbundle"
)

// The ML-DSA roots of a file backend with mldsaDir reach a ClusterTrustBundle and ConfigMaps of their own,
// written as meshca's service account with the shipped RBAC; the classical outputs (root-cert.pem, which
// Envoy loads) keep only the classical roots.
func TestPostQuantumRootsArePublishedApart(t *testing.T) {
	k := catest.SharedKube(t)
	f := newFixture(t, k)
	ns := f.namespace(t, true)
	pqBundle := trustbundle.ClusterTrustBundleName(trustbundle.DefaultPostQuantumSignerName, "roots")
	t.Cleanup(func() {
		ctx := context.Background()
		_ = k.Client.CoordinationV1().Leases(f.leaseNS).
			Delete(ctx, trustbundle.DefaultPostQuantumLeaseName, metav1.DeleteOptions{})
		_ = f.dyn.Resource(f.gvr).Delete(ctx, pqBundle, metav1.DeleteOptions{})
	})
	m := catest.StartMeshca(t, catest.MeshcaOptions{
		Backends: []ca.NamedBackend{{Name: "file", Backend: catest.MLDSAFileBackend(t, nil)}}})
	ctx := context.Background()
	classical, err := m.Issuer.Roots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pq, err := m.Issuer.PostQuantumRoots(ctx)
	if err != nil || len(pq) == 0 || pq[0].PublicKeyAlgorithm != x509.MLDSA {
		t.Fatalf("the backend's ML-DSA roots: %v (%d)", err, len(pq))
	}
	r := f.start(t, "replica-0", func(c *trustbundle.Config) {
		c.Source, c.PostQuantumSource = m.Issuer, trustbundle.SourceFunc(m.Issuer.PostQuantumRoots)
		c.PostQuantum = &trustbundle.PostQuantumConfig{}
	})
	if got := r.p.PostQuantumClusterTrustBundleName(); got != pqBundle {
		t.Fatalf("ML-DSA ClusterTrustBundle %q, want %q", got, pqBundle)
	}
	wantPQ := encode(t, pq...)
	pqHold := func() error {
		u, err := f.dyn.Resource(f.gvr).Get(ctx, pqBundle, metav1.GetOptions{})
		if err != nil {
			return err
		}
		spec, _ := u.Object["spec"].(map[string]any)
		if spec["signerName"] != trustbundle.DefaultPostQuantumSignerName || spec["trustBundle"] != string(wantPQ) {
			return fmt.Errorf("ML-DSA ClusterTrustBundle: signer %v, %d bytes of other roots", spec["signerName"],
				len(fmt.Sprint(spec["trustBundle"])))
		}
		cm, err := k.Client.CoreV1().ConfigMaps(ns).Get(ctx, trustbundle.DefaultPostQuantumConfigMapName,
			metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data[trustbundle.DefaultPostQuantumConfigMapKey] != string(wantPQ) || len(cm.Data) != 1 {
			return errors.New("the ML-DSA ConfigMap holds other data")
		}
		return nil
	}
	catest.Eventually(t, 20*time.Second, "ML-DSA roots published apart",
		func() error { return errors.Join(pqHold(), f.allHold(r.p, encode(t, classical...))()) })
	for _, c := range decode(t, []byte(mustConfigMap(t, f, ns))) {
		if c.PublicKeyAlgorithm == x509.MLDSA {
			t.Fatalf("istio-ca-root-cert holds the ML-DSA root %q", c.Subject)
		}
	}
}

func mustConfigMap(t *testing.T, f *fixture, ns string) string {
	t.Helper()
	cm, err := f.k.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), trustbundle.ConfigMapName,
		metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data[trustbundle.ConfigMapKey]
}

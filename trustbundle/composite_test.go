package trustbundle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/trustbundle"
)

// The composite roots of a file backend with compositeDir reach a ClusterTrustBundle and ConfigMaps of their
// own, beside the ML-DSA ones, written as meshca's service account with the shipped RBAC; neither the classical
// outputs (root-cert.pem) nor the ML-DSA ones hold a composite root.
func TestCompositeRootsArePublishedApart(t *testing.T) {
	k := catest.SharedKube(t)
	f := newFixture(t, k)
	ns := f.namespace(t, true)
	hyBundle := trustbundle.ClusterTrustBundleName(trustbundle.DefaultCompositeSignerName, "roots")
	pqBundle := trustbundle.ClusterTrustBundleName(trustbundle.DefaultPostQuantumSignerName, "roots")
	t.Cleanup(func() {
		ctx := context.Background()
		for _, l := range []string{trustbundle.DefaultCompositeLeaseName, trustbundle.DefaultPostQuantumLeaseName} {
			_ = k.Client.CoordinationV1().Leases(f.leaseNS).Delete(ctx, l, metav1.DeleteOptions{})
		}
		for _, b := range []string{hyBundle, pqBundle} {
			_ = f.dyn.Resource(f.gvr).Delete(ctx, b, metav1.DeleteOptions{})
		}
	})
	hybrid, _ := catest.CompositeFileBackend(t, nil)
	m := catest.StartMeshca(t, catest.MeshcaOptions{Backends: []ca.NamedBackend{
		{Name: "file", Backend: hybrid}, {Name: "mldsa", Backend: catest.MLDSAFileBackend(t, nil)}}})
	ctx := context.Background()
	classical, err := m.Issuer.Roots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pq, err := m.Issuer.PostQuantumRoots(ctx)
	if err != nil || len(pq) == 0 {
		t.Fatalf("the backends' ML-DSA roots: %v (%d)", err, len(pq))
	}
	hy, err := m.Issuer.CompositeRoots(ctx)
	if err != nil || len(hy) == 0 {
		t.Fatalf("the backends' composite roots: %v (%d)", err, len(hy))
	}
	r := f.start(t, "replica-0", func(c *trustbundle.Config) {
		c.Source, c.PostQuantumSource = m.Issuer, trustbundle.SourceFunc(m.Issuer.PostQuantumRoots)
		c.CompositeSource = trustbundle.SourceFunc(m.Issuer.CompositeRoots)
		c.PostQuantum, c.Composite = &trustbundle.PostQuantumConfig{}, &trustbundle.PostQuantumConfig{}
	})
	if got := r.p.CompositeClusterTrustBundleName(); got != hyBundle {
		t.Fatalf("composite ClusterTrustBundle %q, want %q", got, hyBundle)
	}
	wantHy, wantPQ := encode(t, hy...), encode(t, pq...)
	catest.Eventually(t, 30*time.Second, "composite roots published apart", func() error {
		return errors.Join(
			f.apartHolds(hyBundle, trustbundle.DefaultCompositeSignerName, ns,
				trustbundle.DefaultCompositeConfigMapName, trustbundle.DefaultCompositeConfigMapKey, wantHy),
			f.apartHolds(pqBundle, trustbundle.DefaultPostQuantumSignerName, ns,
				trustbundle.DefaultPostQuantumConfigMapName, trustbundle.DefaultPostQuantumConfigMapKey, wantPQ),
			f.allHold(r.p, encode(t, classical...))())
	})
	for _, root := range hy {
		if bytes.Contains([]byte(mustConfigMap(t, f, ns)), encode(t, root)) || bytes.Contains(wantPQ, encode(t, root)) {
			t.Fatalf("the composite root %q is in a classical or ML-DSA output", root.Subject)
		}
	}
}

// apartHolds reports whether the ClusterTrustBundle bundle of signer and the ConfigMap name (key) in ns hold
// exactly want.
func (f *fixture) apartHolds(bundle, signer, ns, name, key string, want []byte) error {
	ctx := context.Background()
	u, err := f.dyn.Resource(f.gvr).Get(ctx, bundle, metav1.GetOptions{})
	if err != nil {
		return err
	}
	spec, _ := u.Object["spec"].(map[string]any)
	if spec["signerName"] != signer || spec["trustBundle"] != string(want) {
		return fmt.Errorf("ClusterTrustBundle %s: signer %v, other roots", bundle, spec["signerName"])
	}
	cm, err := f.k.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if cm.Data[key] != string(want) || len(cm.Data) != 1 {
		return fmt.Errorf("ConfigMap %s holds other data", name)
	}
	return nil
}

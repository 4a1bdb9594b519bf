package manifests_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// The base RBAC is sufficient: acting as meshca's service account (impersonation), every call meshca's
// Kubernetes code makes succeeds against the real API server. And it is least privilege: neighbouring calls
// that meshca does not need are refused.
func TestRBACLeastPrivilege(t *testing.T) {
	k := catest.SharedKube(t)
	meshca, err := kubernetes.NewForConfig(catest.MeshcaRBAC(t, k))
	if err != nil {
		t.Fatal(err)
	}
	admin := k.Client
	ctx := context.Background()
	ns := k.Namespace(t) // a workload namespace
	istio := catest.MeshcaNamespace
	mustCreate := func(err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "cacerts", Namespace: istio}},
		{ObjectMeta: metav1.ObjectMeta{Name: "istio-remote-secret-other", Namespace: istio}},
		{ObjectMeta: metav1.ObjectMeta{Name: "cacerts", Namespace: ns}},
	} {
		_, err := admin.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		mustCreate(err)
	}
	_, err = admin.CoreV1().
		ConfigMaps(ns).
		Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-config"}}, metav1.CreateOptions{})
	mustCreate(err)
	// No controller-manager runs: create the service account the pod runs as.
	_, err = admin.CoreV1().
		ServiceAccounts(ns).
		Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "workload"}}, metav1.CreateOptions{})
	mustCreate(err)
	no := false
	_, err = admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "workload"},
		Spec: corev1.PodSpec{ServiceAccountName: "workload", AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app"}}}}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = admin.CoordinationV1().
		Leases(istio).
		Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "istio-leader"}}, metav1.CreateOptions{})
	mustCreate(err)
	root := selfSignedCA(t)
	byName := func(name string) metav1.ListOptions {
		return metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
	}
	ctb := func(name, signer string) *certificatesv1.ClusterTrustBundle {
		return &certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: signer, TrustBundle: root}}
	}
	rootCM := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-ca-root-cert"},
		Data:       map[string]string{"root-cert.pem": root},
	}

	// In order: later steps use objects earlier ones made.
	allowed := []struct {
		name string
		call func() error
	}{
		{"create a TokenReview", func() error {
			_, err := meshca.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
				Spec: authenticationv1.TokenReviewSpec{
					Token:     "x",
					Audiences: []string{"istio-ca"},
				}}, metav1.CreateOptions{})
			return err
		}},
		{"read the service-account issuer's keys (authn.issuers jwksURL)", func() error {
			_, err := meshca.Discovery().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
			return err
		}},
		{"list pods in all namespaces", func() error {
			_, err := meshca.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{
			"watch pods in all namespaces",
			func() error { return watchOnce(meshca.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{})) },
		},
		{
			"get a pod",
			func() error { _, err := meshca.CoreV1().Pods(ns).Get(ctx, "workload", metav1.GetOptions{}); return err },
		},
		{
			"list namespaces",
			func() error { _, err := meshca.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); return err },
		},
		{
			"watch namespaces",
			func() error { return watchOnce(meshca.CoreV1().Namespaces().Watch(ctx, metav1.ListOptions{})) },
		},
		{"create istio-ca-root-cert in a new namespace", func() error {
			_, err := meshca.CoreV1().ConfigMaps(ns).Create(ctx, rootCM, metav1.CreateOptions{})
			return err
		}},
		{"update istio-ca-root-cert", func() error {
			cm, err := meshca.CoreV1().ConfigMaps(ns).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
			if err != nil {
				return err
			}
			cm.Data["root-cert.pem"] = root + root
			_, err = meshca.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
			return err
		}},
		{"list istio-ca-root-cert in all namespaces by name", func() error {
			_, err := meshca.CoreV1().ConfigMaps("").List(ctx, byName("istio-ca-root-cert"))
			return err
		}},
		{"watch istio-ca-root-cert in all namespaces by name", func() error {
			return watchOnce(meshca.CoreV1().ConfigMaps("").Watch(ctx, byName("istio-ca-root-cert")))
		}},
		{"delete istio-ca-root-cert", func() error {
			return meshca.CoreV1().ConfigMaps(ns).Delete(ctx, "istio-ca-root-cert", metav1.DeleteOptions{})
		}},
		{"create the ClusterTrustBundle for meshca.io/workload-ca", func() error {
			_, err := meshca.CertificatesV1().
				ClusterTrustBundles().
				Create(ctx, ctb("meshca.io:workload-ca:roots", "meshca.io/workload-ca"), metav1.CreateOptions{})
			return err
		}},
		{"update the ClusterTrustBundle", func() error {
			b, err := meshca.CertificatesV1().
				ClusterTrustBundles().
				Get(ctx, "meshca.io:workload-ca:roots", metav1.GetOptions{})
			if err != nil {
				return err
			}
			b.Labels = map[string]string{"app.kubernetes.io/managed-by": "meshca"}
			_, err = meshca.CertificatesV1().ClusterTrustBundles().Update(ctx, b, metav1.UpdateOptions{})
			return err
		}},
		{"list and watch ClusterTrustBundles", func() error {
			if _, err := meshca.CertificatesV1().ClusterTrustBundles().List(ctx, metav1.ListOptions{}); err != nil {
				return err
			}
			return watchOnce(meshca.CertificatesV1().ClusterTrustBundles().Watch(ctx, metav1.ListOptions{}))
		}},
		{"create a ClusterTrustBundle for another meshca.io signer", func() error {
			_, err := meshca.CertificatesV1().
				ClusterTrustBundles().
				Create(ctx, ctb("meshca.io:east:roots", "meshca.io/east"), metav1.CreateOptions{})
			return err
		}},
		{"delete the ClusterTrustBundle", func() error {
			return meshca.CertificatesV1().
				ClusterTrustBundles().
				Delete(ctx, "meshca.io:workload-ca:roots", metav1.DeleteOptions{})
		}},
		{"get the cacerts Secret", func() error {
			_, err := meshca.CoreV1().Secrets(istio).Get(ctx, "cacerts", metav1.GetOptions{})
			return err
		}},
		{"list and watch the cacerts Secret by name", func() error {
			if _, err := meshca.CoreV1().Secrets(istio).List(ctx, byName("cacerts")); err != nil {
				return err
			}
			return watchOnce(meshca.CoreV1().Secrets(istio).Watch(ctx, byName("cacerts")))
		}},
		{"create, get and update the Lease", func() error {
			l, err := meshca.CoordinationV1().
				Leases(istio).
				Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "meshca-trustbundle"}},
					metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				l, err = meshca.CoordinationV1().Leases(istio).Get(ctx, "meshca-trustbundle", metav1.GetOptions{})
			}
			if err != nil {
				return err
			}
			id := "meshca-0"
			l.Spec.HolderIdentity = &id
			_, err = meshca.CoordinationV1().Leases(istio).Update(ctx, l, metav1.UpdateOptions{})
			return err
		}},
	}
	for _, c := range allowed {
		if err := c.call(); err != nil {
			t.Errorf("%s as meshca: %v", c.name, err)
		}
	}
	t.Cleanup(func() {
		_ = admin.CertificatesV1().ClusterTrustBundles().Delete(ctx, "meshca.io:east:roots", metav1.DeleteOptions{})
	})

	forbidden := []struct {
		name string
		call func() error
	}{
		{"get another Secret in istio-system", func() error {
			_, err := meshca.CoreV1().Secrets(istio).Get(ctx, "istio-remote-secret-other", metav1.GetOptions{})
			return err
		}},
		{"list all Secrets in istio-system", func() error {
			_, err := meshca.CoreV1().Secrets(istio).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"get a cacerts Secret in another namespace", func() error {
			_, err := meshca.CoreV1().Secrets(ns).Get(ctx, "cacerts", metav1.GetOptions{})
			return err
		}},
		{"update the cacerts Secret", func() error {
			s, err := k.Client.CoreV1().Secrets(istio).Get(ctx, "cacerts", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = meshca.CoreV1().Secrets(istio).Update(ctx, s, metav1.UpdateOptions{})
			return err
		}},
		{
			"delete a pod",
			func() error { return meshca.CoreV1().Pods(ns).Delete(ctx, "workload", metav1.DeleteOptions{}) },
		},
		{"create a pod", func() error {
			_, err := meshca.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}, metav1.CreateOptions{})
			return err
		}},
		{"get nodes", func() error { _, err := meshca.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); return err }},
		{
			"list all ConfigMaps",
			func() error { _, err := meshca.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); return err },
		},
		{"get another ConfigMap", func() error {
			_, err := meshca.CoreV1().ConfigMaps(ns).Get(ctx, "app-config", metav1.GetOptions{})
			return err
		}},
		{"delete another ConfigMap", func() error {
			return meshca.CoreV1().ConfigMaps(ns).Delete(ctx, "app-config", metav1.DeleteOptions{})
		}},
		{"create a ClusterTrustBundle for another signer", func() error {
			_, err := meshca.CertificatesV1().
				ClusterTrustBundles().
				Create(ctx, ctb("example.com:other:roots", "example.com/other"), metav1.CreateOptions{})
			return err
		}},
		{"update a ClusterTrustBundle not meshca's", func() error {
			b, err := meshca.CertificatesV1().
				ClusterTrustBundles().
				Get(ctx, "meshca.io:east:roots", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b.Labels = map[string]string{"x": "y"}
			_, err = meshca.CertificatesV1().ClusterTrustBundles().Update(ctx, b, metav1.UpdateOptions{})
			return err
		}},
		{"get istiod's Lease", func() error {
			_, err := meshca.CoordinationV1().Leases(istio).Get(ctx, "istio-leader", metav1.GetOptions{})
			return err
		}},
		{"create a Lease in another namespace", func() error {
			_, err := meshca.CoordinationV1().
				Leases(ns).
				Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "meshca-trustbundle"}},
					metav1.CreateOptions{})
			return err
		}},
		{"create a SubjectAccessReview", func() error {
			_, err := meshca.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User:               "x",
					ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods"},
				}}, metav1.CreateOptions{})
			return err
		}},
		{"create a service-account token", func() error {
			_, err := meshca.CoreV1().
				ServiceAccounts(istio).
				CreateToken(ctx, "meshca", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
			return err
		}},
	}
	for _, c := range forbidden {
		if err := c.call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as meshca: got %v, want Forbidden", c.name, err)
		}
	}
}

func watchOnce(w interface{ Stop() }, err error) error {
	if err == nil {
		w.Stop()
	}
	return err
}

// selfSignedCA returns a PEM CA certificate, as the ClusterTrustBundle API requires.
func selfSignedCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshca test root"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// The multicluster component lets meshca watch istiod-style remote secrets (selected by label, which RBAC
// cannot express) in istio-system, and nothing more. It runs in a cluster of its own so the shared cluster
// keeps the base RBAC.
func TestMulticlusterComponentRBAC(t *testing.T) {
	k := catest.StartKube(t)
	cfg := catest.MeshcaRBAC(t, k)
	ctx := context.Background()
	var extra []*unstructured.Unstructured
	for _, o := range build(t, "overlays/multicluster") {
		if o.GetName() == "meshca-remote-secrets" {
			extra = append(extra, o)
		}
	}
	if len(extra) != 2 {
		t.Fatalf(
			"found %d meshca-remote-secrets objects in overlays/multicluster, want a Role and a RoleBinding",
			len(extra),
		)
	}
	if err := catest.Apply(ctx, k.Config, extra, catest.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	meshca, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	remote := metav1.ListOptions{LabelSelector: "istio/multiCluster=true"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := meshca.CoreV1().Secrets(catest.MeshcaNamespace).List(ctx, remote)
		if err == nil {
			break
		}
		if !apierrors.IsForbidden(err) || time.Now().After(deadline) {
			t.Fatalf("listing remote secrets as meshca: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := watchOnce(meshca.CoreV1().Secrets(catest.MeshcaNamespace).Watch(ctx, remote)); err != nil {
		t.Errorf("watching remote secrets as meshca: %v", err)
	}
	ns := k.Namespace(t)
	if _, err := meshca.CoreV1().Secrets(ns).List(ctx, remote); !apierrors.IsForbidden(err) {
		t.Errorf("listing Secrets in another namespace as meshca: got %v, want Forbidden", err)
	}
	if _, err := meshca.CoreV1().Secrets("").List(ctx, remote); !apierrors.IsForbidden(err) {
		t.Errorf("listing Secrets in all namespaces as meshca: got %v, want Forbidden", err)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"istio/multiCluster": "true"}},
	}
	if _, err := meshca.CoreV1().Secrets(catest.MeshcaNamespace).Create(ctx, s,
		metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("creating a Secret in istio-system as meshca: got %v, want Forbidden", err)
	}
}

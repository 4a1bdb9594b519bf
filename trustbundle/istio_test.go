package trustbundle_test

import (
	"context"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/trustbundle"
)

// Istio's names: with ENABLE_CLUSTER_TRUST_BUNDLE_API, Istio mounts the ClusterTrustBundle
// istio.io:istiod-ca:root-cert of signer istio.io/istiod-ca (istio/istio pkg clustertrustbundle) as
// root-cert.pem. meshca publishes under those names with signerName istio.io/istiod-ca and bundleName
// root-cert, on a cluster serving only v1beta1, as meshca's service account with the shipped RBAC plus the
// rules docs/istio.md lists.
func TestPublisherUnderIstiosNames(t *testing.T) {
	k := catest.StartKube(t,
		"--runtime-config=certificates.k8s.io/v1/clustertrustbundles=false,certificates.k8s.io/v1beta1=true,"+
			"certificates.k8s.io/v1beta1/clustertrustbundles=true")
	f := newFixture(t, k)
	f.signer, f.gvr.Version = "istio.io/istiod-ca", "v1beta1"
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "meshca-istio-trust-bundle"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"clustertrustbundles"},
				ResourceNames: []string{"istio.io:istiod-ca:root-cert"}, Verbs: []string{"update", "patch", "delete"}},
			{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"signers"},
				ResourceNames: []string{"istio.io/istiod-ca"}, Verbs: []string{"attest"}},
		}}
	if _, err := k.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "meshca-istio-trust-bundle"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "meshca", Namespace: catest.MeshcaNamespace}}}
	if _, err := k.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.namespace(t, true)
	r := f.start(t, "replica-0", func(c *trustbundle.Config) { c.BundleName = "root-cert" })
	if got := r.p.ClusterTrustBundleName(); got != "istio.io:istiod-ca:root-cert" {
		t.Fatalf("ClusterTrustBundle name %q, want Istio's istio.io:istiod-ca:root-cert", got)
	}
	catest.Eventually(t, 20*time.Second, "Istio's ClusterTrustBundle published", f.allHold(r.p, encode(t, f.rootA)))
}

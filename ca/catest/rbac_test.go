package catest_test

import (
	"context"
	"testing"

	"github.com/meshca/meshca/ca/catest"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// MeshcaRBAC's configuration acts as meshca's service account: what the manifests grant works, what they
// do not is refused, and a second call on the same cluster is harmless.
func TestMeshcaRBACImpersonatesMeshca(t *testing.T) {
	k := catest.SharedKube(t)
	cfg := catest.MeshcaRBAC(t, k)
	if again := catest.MeshcaRBAC(t, k); again.Impersonate.UserName != catest.MeshcaUser {
		t.Fatalf("second call impersonates %q, want %q", again.Impersonate.UserName, catest.MeshcaUser)
	}
	if k.Config.Impersonate.UserName != "" {
		t.Fatalf("MeshcaRBAC changed the admin configuration: it impersonates %q", k.Config.Impersonate.UserName)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	review, err := c.AuthenticationV1().
		SelfSubjectReviews().
		Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview: %v", err)
	}
	if got := review.Status.UserInfo.Username; got != catest.MeshcaUser {
		t.Fatalf("API server sees user %q, want %q", got, catest.MeshcaUser)
	}

	if _, err := c.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: "not-a-token"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("creating a TokenReview as meshca: %v", err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "not-meshcas"}}
	if _, err := k.Client.CoreV1().Secrets(catest.MeshcaNamespace).Create(ctx, secret,
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Secrets(catest.MeshcaNamespace).Get(ctx, "not-meshcas",
		metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("reading another Secret in %s as meshca: got %v, want Forbidden", catest.MeshcaNamespace, err)
	}
}

package catest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshca/meshca/manifests"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// meshca's own identity in a cluster, as manifests/base/rbac.yaml grants it.
const (
	MeshcaNamespace      = "istio-system"
	MeshcaServiceAccount = "meshca"
	MeshcaUser           = "system:serviceaccount:" + MeshcaNamespace + ":" + MeshcaServiceAccount
)

var (
	rbacMu      sync.Mutex
	rbacApplied = map[*Kube]bool{}
)

// MeshcaRBAC applies meshca's ServiceAccount and RBAC from manifests/base/rbac.yaml to k (once per cluster;
// server-side apply, so repeating it is harmless), creating the istio-system namespace if needed, and returns
// a copy of k's admin configuration that impersonates meshca's service account. Code run with it has exactly
// the permissions the shipped manifests give meshca, so a missing rule fails the test that needs it.
func MeshcaRBAC(tb testing.TB, k *Kube) *rest.Config {
	tb.Helper()
	cfg := rest.CopyConfig(k.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: MeshcaUser,
		Groups: []string{
			"system:serviceaccounts",
			"system:serviceaccounts:" + MeshcaNamespace,
			"system:authenticated",
		},
	}
	rbacMu.Lock()
	defer rbacMu.Unlock()
	if rbacApplied[k] {
		return cfg
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := applyMeshcaRBAC(ctx, k, cfg); err != nil {
		tb.Fatalf("catest: meshca RBAC: %v", err)
	}
	rbacApplied[k] = true
	return cfg
}

func applyMeshcaRBAC(ctx context.Context, k *Kube, impersonated *rest.Config) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: MeshcaNamespace}}
	if _, err := k.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil &&
		!apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", MeshcaNamespace, err)
	}
	objs, err := DecodeYAML(manifests.RBAC)
	if err != nil {
		return err
	}
	if err := Apply(ctx, k.Config, objs, ApplyOptions{FieldManager: "meshca-catest"}); err != nil {
		return err
	}
	// The RBAC authorizer works from an informer cache: wait until the new rules are in effect.
	client, err := kubernetes.NewForConfig(impersonated)
	if err != nil {
		return err
	}
	probes := []authorizationv1.ResourceAttributes{
		{Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create"},
		{Group: "coordination.k8s.io", Resource: "leases", Verb: "create", Namespace: MeshcaNamespace},
	}
	for {
		allowed := 0
		for _, p := range probes {
			r, err := client.AuthorizationV1().
				SelfSubjectAccessReviews().
				Create(ctx, &authorizationv1.SelfSubjectAccessReview{
					Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &p}}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("checking access as %s: %w", MeshcaUser, err)
			}
			if r.Status.Allowed {
				allowed++
			}
		}
		if allowed == len(probes) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("RBAC for %s not in effect: %w", MeshcaUser, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitAllowed waits until the RBAC authorizer's cache grants attrs to cfg's user (a SelfSubjectAccessReview
// says allowed), for at most 30 seconds.
func WaitAllowed(tb testing.TB, cfg *rest.Config, attrs authorizationv1.ResourceAttributes) {
	tb.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	Eventually(tb, 30*time.Second, fmt.Sprintf("RBAC %+v", attrs), func() error {
		r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(),
			&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &attrs}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if !r.Status.Allowed {
			return fmt.Errorf("not allowed yet")
		}
		return nil
	})
}

package manifests_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var crdsOnce sync.Once

// installCRDs really installs the Prometheus Operator CRDs the manifests use (testdata/crds: upstream's
// shape, trimmed, strict) and the istio-system namespace, and waits until the kinds are served.
func installCRDs(t *testing.T, k *catest.Kube) {
	t.Helper()
	crdsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: catest.MeshcaNamespace}}
		if _, err := k.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil &&
			!apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		files, _ := filepath.Glob("testdata/crds/*.yaml")
		var objs []*unstructured.Unstructured
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			o, err := catest.DecodeYAML(b)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			objs = append(objs, o...)
		}
		if len(objs) != 2 {
			t.Fatalf("found %d CRDs in testdata/crds, want 2", len(objs))
		}
		if err := catest.Apply(ctx, k.Config, objs, catest.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			gvk := schema.GroupVersionKind{Group: group, Version: "v1", Kind: kind}
			for {
				if _, err := catest.RESTMapping(k.Config, gvk); err == nil {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("CRD %s not served: %v", o.GetName(), ctx.Err())
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	})
}

// Every kustomization, built as kubectl apply -k would, passes the real API server's validation, defaulting,
// admission and RBAC escalation checks in a server-side dry run (strict field validation: an unknown or
// misspelt field fails), and the dry run persists nothing.
func TestServerSideDryRun(t *testing.T) {
	k := catest.SharedKube(t)
	installCRDs(t, k)
	ctx := context.Background()
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			objs := build(t, dir)
			if err := catest.Apply(ctx, k.Config, objs, catest.ApplyOptions{DryRun: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := k.Client.AppsV1().Deployments(catest.MeshcaNamespace).Get(ctx, "meshca",
				metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("after a dry run, Deployment meshca: %v, want NotFound", err)
			}
		})
	}
}

// The dry run is a real check: objects the API server would refuse are refused, one per kind of mistake.
func TestServerSideDryRunRefuses(t *testing.T) {
	k := catest.SharedKube(t)
	installCRDs(t, k)
	base := build(t, "base")
	cases := []struct {
		name string
		kind string
		edit func(o map[string]any)
		want string // in the API server's message
	}{
		{"a misspelt Deployment field", "Deployment", func(o map[string]any) {
			_ = unstructured.SetNestedField(o, int64(2), "spec", "replica")
		}, ".spec.replica"},
		{"a Service port out of range", "Service", func(o map[string]any) {
			ports, _, _ := unstructured.NestedSlice(o, "spec", "ports")
			ports[0].(map[string]any)["port"] = int64(150120)
			_ = unstructured.SetNestedSlice(o, ports, "spec", "ports")
		}, "spec.ports[0].port"},
		{"a misspelt ServiceMonitor field", "ServiceMonitor", func(o map[string]any) {
			_ = unstructured.SetNestedField(o, "30s", "spec", "intervall")
		}, ".spec.intervall"},
		{"a PrometheusRule duration Prometheus cannot parse", "PrometheusRule", func(o map[string]any) {
			groups, _, _ := unstructured.NestedSlice(o, "spec", "groups")
			rules := groups[0].(map[string]any)["rules"].([]any)
			rules[0].(map[string]any)["for"] = "1 hour"
			_ = unstructured.SetNestedSlice(o, groups, "spec", "groups")
		}, "spec.groups[0].rules[0].for"},
		{
			"a PodDisruptionBudget with both minAvailable and maxUnavailable",
			"PodDisruptionBudget",
			func(o map[string]any) {
				_ = unstructured.SetNestedField(o, int64(1), "spec", "maxUnavailable")
			},
			"minAvailable",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var obj *unstructured.Unstructured
			for _, o := range base {
				if o.GetKind() == c.kind {
					obj = o.DeepCopy()
				}
			}
			if obj == nil {
				t.Fatalf("no %s in the base", c.kind)
			}
			c.edit(obj.Object)
			err := catest.Apply(
				context.Background(),
				k.Config,
				[]*unstructured.Unstructured{obj},
				catest.ApplyOptions{DryRun: true},
			)
			// Schema errors come back as 422 Invalid; fields unknown to the server-side-apply schema as 500
			// "failed to create typed patch object". Either way the API server refused, naming the field.
			if code := statusCode(err); code < 400 || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("dry run of %s: got %v (HTTP %d), want a refusal naming %s", c.name, err, code, c.want)
			}
		})
	}
}

func statusCode(err error) int32 {
	var s apierrors.APIStatus
	if errors.As(err, &s) {
		return s.Status().Code
	}
	return 0
}

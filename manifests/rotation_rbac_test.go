package manifests_test

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/manifests"
)

// builtConfig returns the parsed config.yaml of the meshca-config ConfigMap in objs.
func builtConfig(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && configMapHash.MatchString(o.GetName()) {
			data, _, _ := unstructured.NestedString(o.Object, "data", "config.yaml")
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
				t.Fatalf("config.yaml: %v", err)
			}
			return cfg
		}
	}
	t.Fatal("no meshca-config ConfigMap in the build")
	return nil
}

// The root-rotation component's configuration is the base's plus a rotation: section that keeps the state in a
// ConfigMap in meshca's own namespace under the names its Role grants, with the admin API on loopback; and the
// Deployment it configures runs more than one replica, which is what the ConfigMap and Lease are for.
func TestRootRotationComponentConfig(t *testing.T) {
	objs := build(t, "overlays/root-rotation")
	cfg := builtConfig(t, objs)
	var component map[string]any
	if err := yaml.Unmarshal(manifests.RootRotationConfig, &component); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, component) {
		t.Fatal("overlays/root-rotation does not carry components/root-rotation/config.yaml")
	}
	rot, ok := cfg["rotation"].(map[string]any)
	if !ok {
		t.Fatal("no rotation: section in the component's config.yaml")
	}
	delete(cfg, "rotation")
	if base := builtConfig(t, build(t, "base")); !reflect.DeepEqual(cfg, base) {
		t.Errorf("components/root-rotation/config.yaml differs from base/config.yaml beyond rotation:\n  %v",
			diff("config", cfg, base, 5))
	}
	dep := find(t, objs, "Deployment", "meshca")
	if r := ptrOr(typed[appsv1.Deployment](t, dep).Spec.Replicas); r < 2 {
		t.Errorf("the Deployment runs %d replicas; the rotation's ConfigMap state is for several", r)
	}
	if rot["leaseNamespace"] != dep.GetNamespace() {
		t.Errorf("rotation.leaseNamespace %v, want the Deployment's namespace %s", rot["leaseNamespace"],
			dep.GetNamespace())
	}
	if _, ok := rot["stateFile"]; ok {
		t.Error("rotation.stateFile is for a single meshca; replicas share rotation.configMap")
	}
	if ap, err := netip.ParseAddrPort(rot["adminAddr"].(string)); err != nil || !ap.Addr().IsLoopback() {
		t.Errorf("rotation.adminAddr %v: want a loopback address (%v)", rot["adminAddr"], err)
	}
	role := typed[rbacv1.Role](t, find(t, objs, "Role", "meshca-rotation"))
	if role.Namespace != dep.GetNamespace() {
		t.Errorf("Role meshca-rotation in %s, want %s", role.Namespace, dep.GetNamespace())
	}
	names := map[string][]string{}
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			names[res] = append(names[res], r.ResourceNames...)
		}
	}
	cm := rot["configMap"].(string)
	for _, want := range []struct{ resource, name string }{
		{"configmaps", cm}, {"configmaps", cm + "-replicas"}, {"leases", rot["leaseName"].(string)},
	} {
		if !slices.Contains(names[want.resource], want.name) {
			t.Errorf("Role meshca-rotation grants nothing on %s %s (from config.yaml)", want.resource, want.name)
		}
	}
}

// The root-rotation Role, with the base RBAC, lets meshca's service account make every call the rotation's
// Kubernetes state makes (rotation.KubeStore, the replicas' reports, the Lease, Events) and nothing nearby. It
// runs in a cluster of its own so the shared cluster keeps the base RBAC.
func TestRootRotationRBAC(t *testing.T) {
	k := catest.StartKube(t)
	cfg := catest.MeshcaRBAC(t, k)
	ctx := context.Background()
	objs, err := catest.DecodeYAML(manifests.RootRotationRBAC)
	if err != nil {
		t.Fatal(err)
	}
	if err := catest.Apply(ctx, k.Config, objs, catest.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	istio := catest.MeshcaNamespace
	catest.WaitAllowed(t, cfg, authorizationv1.ResourceAttributes{Namespace: istio, Resource: "events",
		Verb: "create"})
	meshca, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin := k.Client
	for _, name := range []string{"istio", "meshca-rotation-other"} {
		if _, err := admin.CoreV1().ConfigMaps(istio).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CoordinationV1().Leases(istio).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-leader"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cms, leases := meshca.CoreV1().ConfigMaps(istio), meshca.CoordinationV1().Leases(istio)
	patch := []byte(`{"data":{"meshca-0":"{}"}}`)
	event := func(ns string) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "meshca-rotation.1.x", Namespace: ns},
			InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: ns,
				Name: "meshca-rotation"}, Reason: "RotationStart", Message: "idle → staged", Type: "Normal",
			FirstTimestamp: metav1.NewTime(time.Now()), LastTimestamp: metav1.NewTime(time.Now()), Count: 1}
	}
	cmNamed := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": "v"}}
	}
	// In order: later calls use what earlier ones made.
	allowed := []struct {
		name string
		call func() error
	}{
		{"create the state ConfigMap", func() error {
			_, err := cms.Create(ctx, cmNamed("meshca-rotation"), metav1.CreateOptions{})
			return err
		}},
		{"update the state at the version read", func() error {
			cm, err := cms.Get(ctx, "meshca-rotation", metav1.GetOptions{})
			if err != nil {
				return err
			}
			cm.Data["k"] = "w"
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
			return err
		}},
		{"create the replicas' ConfigMap", func() error {
			_, err := cms.Create(ctx, cmNamed("meshca-rotation-replicas"), metav1.CreateOptions{})
			return err
		}},
		{"merge-patch a report into the replicas' ConfigMap and read it", func() error {
			if _, err := cms.Patch(ctx, "meshca-rotation-replicas", types.MergePatchType, patch,
				metav1.PatchOptions{}); err != nil {
				return err
			}
			_, err := cms.Get(ctx, "meshca-rotation-replicas", metav1.GetOptions{})
			return err
		}},
		{"create, get and update the rotation's Lease", func() error {
			l, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
				Name: "meshca-rotation"}}, metav1.CreateOptions{})
			if err != nil {
				return err
			}
			if l, err = leases.Get(ctx, l.Name, metav1.GetOptions{}); err != nil {
				return err
			}
			id := "meshca-0"
			l.Spec.HolderIdentity = &id
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
			return err
		}},
		{"create a transition's Event in meshca's namespace", func() error {
			_, err := meshca.CoreV1().Events(istio).Create(ctx, event(istio), metav1.CreateOptions{})
			return err
		}},
	}
	for _, c := range allowed {
		if err := c.call(); err != nil {
			t.Errorf("%s as meshca: %v", c.name, err)
		}
	}
	other := k.Namespace(t)
	forbidden := []struct {
		name string
		call func() error
	}{
		{"get another ConfigMap in meshca's namespace", func() error {
			_, err := cms.Get(ctx, "meshca-rotation-other", metav1.GetOptions{})
			return err
		}},
		{"update another ConfigMap in meshca's namespace", func() error {
			cm, err := admin.CoreV1().ConfigMaps(istio).Get(ctx, "istio", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
			return err
		}},
		{"patch the state ConfigMap (only updates at a version)", func() error {
			_, err := cms.Patch(ctx, "meshca-rotation", types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		}},
		{"delete the state ConfigMap", func() error {
			return cms.Delete(ctx, "meshca-rotation", metav1.DeleteOptions{})
		}},
		{"list the ConfigMaps in meshca's namespace", func() error {
			_, err := cms.List(ctx, metav1.ListOptions{})
			return err
		}},
		{"get the state ConfigMap in another namespace", func() error {
			_, err := meshca.CoreV1().ConfigMaps(other).Get(ctx, "meshca-rotation", metav1.GetOptions{})
			return err
		}},
		{"get istiod's Lease", func() error {
			_, err := leases.Get(ctx, "istio-leader", metav1.GetOptions{})
			return err
		}},
		{"delete the rotation's Lease", func() error {
			return leases.Delete(ctx, "meshca-rotation", metav1.DeleteOptions{})
		}},
		{"create an Event in another namespace", func() error {
			_, err := meshca.CoreV1().Events(other).Create(ctx, event(other), metav1.CreateOptions{})
			return err
		}},
		{"read the Events in meshca's namespace", func() error {
			_, err := meshca.CoreV1().Events(istio).List(ctx, metav1.ListOptions{})
			return err
		}},
	}
	for _, c := range forbidden {
		if err := c.call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as meshca: got %v, want Forbidden", c.name, err)
		}
	}
}

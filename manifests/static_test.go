package manifests_test

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// Objects that the overlays reference but the operator creates (docs/istio.md): CA material and credentials.
var external = map[string]bool{
	"ConfigMap/meshca-vault": true, "ConfigMap/meshca-stepca": true,
	"Secret/cacerts": true, "Secret/cacerts-next": true, "Secret/meshca-stepca-provisioner": true,
}

// Every kustomization builds into a Deployment that runs meshca as the issue and the security baseline ask:
// 2+ replicas spread over nodes, non-root, read-only root file system, no capabilities, RuntimeDefault
// seccomp, probes on the monitoring port, its configuration mounted where the args say, and every volume it
// mounts either in the build or among the documented operator-created objects.
func TestDeploymentHardened(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			objs := build(t, dir)
			d := typed[appsv1.Deployment](t, find(t, objs, "Deployment", "meshca"))
			if d.Namespace != "istio-system" {
				t.Errorf("namespace %q, want istio-system", d.Namespace)
			}
			if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
				t.Errorf("replicas %d, want at least 2", ptrOr(d.Spec.Replicas))
			}
			pod := d.Spec.Template.Spec
			if pod.ServiceAccountName != "meshca" {
				t.Errorf("serviceAccountName %q, want meshca", pod.ServiceAccountName)
			}
			if a := pod.Affinity; a == nil || a.PodAntiAffinity == nil ||
				len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution)+
					len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
				t.Error("no pod anti-affinity: both replicas may land on one node")
			} else {
				for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
					sel, _ := metaSelector(t, w.PodAffinityTerm.LabelSelector.MatchLabels)
					if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
						t.Errorf("anti-affinity selector %v does not match meshca's pods", sel)
					}
				}
			}
			psc := pod.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Error("pod securityContext.runAsNonRoot is not true")
			}
			if psc == nil || psc.SeccompProfile == nil ||
				psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("pod seccompProfile is not RuntimeDefault")
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := pod.Containers[0]
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Fatal("container has no securityContext")
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Error("readOnlyRootFilesystem is not true")
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Error("allowPrivilegeEscalation is not false")
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop,
				[]corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Errorf("capabilities %+v, want drop [ALL] and no add", sc.Capabilities)
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if ports["grpc"] != 15012 || ports["http-monitoring"] != 15014 {
				t.Errorf("container ports %v, want grpc 15012 and http-monitoring 15014", ports)
			}
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path ||
					(p.probe.HTTPGet.Port.String() != "http-monitoring" && p.probe.HTTPGet.Port.IntValue() != 15014) {
					t.Errorf("%s probe %+v, want GET %s on 15014", p.name, p.probe, p.path)
				}
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() ||
				c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
			}
			env := map[string]string{}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
					env[e.Name] = e.ValueFrom.FieldRef.FieldPath
				}
			}
			if env["POD_NAME"] != "metadata.name" || env["POD_NAMESPACE"] != "metadata.namespace" {
				t.Errorf("env %v: want POD_NAME and POD_NAMESPACE from the downward API", env)
			}

			// Volumes: every mount has a volume; every ConfigMap or Secret volume exists or is external.
			volumes := map[string]corev1.Volume{}
			for _, v := range pod.Volumes {
				volumes[v.Name] = v
			}
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				if _, ok := volumes[m.Name]; !ok {
					t.Errorf("volumeMount %s has no volume", m.Name)
				}
				// tmp, and admin where meshca writes the admin token (adminTokenFile), are in-memory emptyDirs.
				if !m.ReadOnly && m.Name != "tmp" && m.Name != "admin" {
					t.Errorf("volumeMount %s is writable", m.Name)
				}
				for other, p := range mounts {
					if strings.HasPrefix(m.MountPath+"/", p+"/") || strings.HasPrefix(p+"/", m.MountPath+"/") {
						t.Errorf("volumeMounts %s (%s) and %s (%s) nest", m.Name, m.MountPath, other, p)
					}
				}
				mounts[m.Name] = m.MountPath
			}
			for _, v := range pod.Volumes {
				var kind, name string
				switch {
				case v.ConfigMap != nil:
					kind, name = "ConfigMap", v.ConfigMap.Name
				case v.Secret != nil:
					kind, name = "Secret", v.Secret.SecretName
				default:
					continue
				}
				if !external[kind+"/"+name] && !has(objs, kind, name) {
					t.Errorf(
						"volume %s refers to %s %s, which is neither in the build nor a documented external object",
						v.Name,
						kind,
						name,
					)
				}
			}

			// The configuration: args name a file in the mounted meshca-config ConfigMap.
			i := slices.Index(c.Args, "--config")
			if i < 0 || i+1 >= len(c.Args) {
				t.Fatalf("args %v have no --config FILE", c.Args)
			}
			file := c.Args[i+1]
			cfgVol, ok := volumes["config"]
			if !ok || cfgVol.ConfigMap == nil || mounts["config"] != path.Dir(file) {
				t.Fatalf("--config %s is not in the config ConfigMap volume (mounted at %s)", file, mounts["config"])
			}
			cm := typed[corev1.ConfigMap](t, find(t, objs, "ConfigMap", cfgVol.ConfigMap.Name))
			if !strings.HasPrefix(cm.Name, "meshca-config") {
				t.Errorf("config ConfigMap %s, want meshca-config-<hash>", cm.Name)
			}
			var cfg map[string]any
			if err := yaml.UnmarshalStrict([]byte(cm.Data[path.Base(file)]), &cfg); err != nil ||
				cfg["backends"] == nil {
				t.Errorf("ConfigMap %s key %s: not a meshca configuration (%v)", cm.Name, path.Base(file), err)
			}
		})
	}
}

// The Service, PodDisruptionBudget and ServiceMonitor select meshca's pods and ports.
func TestServiceAndMonitoring(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			objs := build(t, dir)
			d := typed[appsv1.Deployment](t, find(t, objs, "Deployment", "meshca"))
			podLabels := labels.Set(d.Spec.Template.Labels)

			svc := typed[corev1.Service](t, find(t, objs, "Service", "meshca"))
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
				t.Errorf("Service selector %v does not select meshca's pods %v", svc.Spec.Selector, podLabels)
			}
			want := map[string]int32{"grpc": 15012, "http-monitoring": 15014}
			for _, p := range svc.Spec.Ports {
				if want[p.Name] != p.Port || p.TargetPort.String() != p.Name {
					t.Errorf(
						"Service port %s %d → %s, want %d → the container port of that name",
						p.Name,
						p.Port,
						p.TargetPort.String(),
						want[p.Name],
					)
				}
				delete(want, p.Name)
			}
			if len(want) > 0 {
				t.Errorf("Service lacks ports %v", want)
			}

			pdb := typed[policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget", "meshca"))
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
				t.Errorf("PodDisruptionBudget minAvailable %v, want 1", pdb.Spec.MinAvailable)
			}
			if sel, _ := metaSelector(t, pdb.Spec.Selector.MatchLabels); !sel.Matches(podLabels) {
				t.Errorf("PodDisruptionBudget selector %v does not select meshca's pods", sel)
			}

			sm := find(t, objs, "ServiceMonitor", "meshca")
			smLabels, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			if sel, _ := metaSelector(t, smLabels); !sel.Matches(labels.Set(svc.Labels)) {
				t.Errorf("ServiceMonitor selector %v does not select the Service (labels %v)", smLabels, svc.Labels)
			}
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			if len(eps) != 1 || eps[0].(map[string]any)["port"] != "http-monitoring" ||
				eps[0].(map[string]any)["path"] != "/metrics" {
				t.Errorf("ServiceMonitor endpoints %v, want port http-monitoring path /metrics", eps)
			}

			dash := typed[corev1.ConfigMap](t, find(t, objs, "ConfigMap", "meshca-dashboard"))
			if dash.Labels["grafana_dashboard"] != "1" {
				t.Errorf("dashboard ConfigMap labels %v, want grafana_dashboard: \"1\"", dash.Labels)
			}
			var board struct {
				Title  string
				Panels []struct{ Title string }
			}
			if err := json.Unmarshal([]byte(dash.Data["meshca.json"]), &board); err != nil || len(board.Panels) == 0 {
				t.Errorf("dashboard meshca.json: %v (%d panels)", err, len(board.Panels))
			}
		})
	}
}

// Every namespaced object lives in istio-system, and every RBAC binding grants to meshca's ServiceAccount.
func TestNamespacesAndSubjects(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			objs := build(t, dir)
			find(t, objs, "ServiceAccount", "meshca")
			for _, o := range objs {
				switch o.GetKind() {
				case "ClusterRole", "ClusterRoleBinding":
					if o.GetNamespace() != "" {
						t.Errorf("%s %s has namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
					}
				default:
					if o.GetNamespace() != "istio-system" {
						t.Errorf("%s %s in namespace %q, want istio-system", o.GetKind(), o.GetName(), o.GetNamespace())
					}
				}
				if o.GetKind() == "RoleBinding" || o.GetKind() == "ClusterRoleBinding" {
					b := typed[rbacv1.RoleBinding](t, o)
					if len(b.Subjects) != 1 ||
						b.Subjects[0] != (rbacv1.Subject{Kind: "ServiceAccount", Name: "meshca",
							Namespace: "istio-system"}) {
						t.Errorf(
							"%s %s subjects %+v, want only ServiceAccount istio-system/meshca",
							o.GetKind(),
							o.GetName(),
							b.Subjects,
						)
					}
				}
			}
		})
	}
}

func has(objs []*unstructured.Unstructured, kind, name string) bool {
	return slices.ContainsFunc(
		objs,
		func(o *unstructured.Unstructured) bool { return o.GetKind() == kind && o.GetName() == name },
	)
}

func metaSelector(t *testing.T, m map[string]string) (labels.Selector, error) {
	t.Helper()
	if len(m) == 0 {
		t.Error("empty label selector selects everything")
	}
	return labels.SelectorFromSet(m), nil
}

func ptrOr(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// Secrets meshca may read, by kustomization: the base reads cacerts through the API; the file overlay
// mounts it instead, and the Vault and step-ca overlays do not use it, so they drop the rule; every one may
// keep the revocation state in meshca-revocations (crl.secret); nothing else reads Secrets except the
// multicluster component.
func TestSecretAccess(t *testing.T) {
	want := map[string][]string{
		"base":                        {"cacerts", "meshca-revocations"},
		"overlays/file":               {"meshca-revocations"},
		"overlays/vault":              {"meshca-revocations"},
		"overlays/stepca":             {"meshca-revocations"},
		"overlays/multicluster":       {"cacerts", "*", "meshca-revocations"},
		"overlays/k8s-signer":         {"cacerts", "meshca-revocations"},
		"overlays/istio-trust-bundle": {"cacerts", "meshca-revocations"},
		"overlays/root-rotation":      {"cacerts", "meshca-revocations"},
	}
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			var got []string
			for _, o := range build(t, dir) {
				var rules []rbacv1.PolicyRule
				switch o.GetKind() {
				case "Role":
					rules = typed[rbacv1.Role](t, o).Rules
				case "ClusterRole":
					rules = typed[rbacv1.ClusterRole](t, o).Rules
				}
				for _, r := range rules {
					if !slices.Contains(r.Resources, "secrets") && !slices.Contains(r.Resources, "*") {
						continue
					}
					if o.GetKind() == "ClusterRole" {
						t.Errorf("ClusterRole %s grants Secrets cluster-wide", o.GetName())
					}
					if len(r.ResourceNames) == 0 {
						got = append(got, "*")
					}
					got = append(got, r.ResourceNames...)
				}
			}
			slices.Sort(got)
			w := slices.Clone(want[dir])
			slices.Sort(w)
			if !slices.Equal(got, w) {
				t.Errorf("Secrets readable: %q, want %q", got, w)
			}
		})
	}
}

// The without-prometheus-operator component leaves nothing of the Prometheus Operator's API in the build, and
// everything else in place.
func TestWithoutPrometheusOperator(t *testing.T) {
	dir := t.TempDir()
	abs, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, abs) // kustomize wants relative paths
	if err != nil {
		t.Fatal(err)
	}
	k := "resources:\n  - " + filepath.Join(
		rel,
		"overlays/file",
	) + "\ncomponents:\n  - " + filepath.Join(
		rel,
		"components/without-prometheus-operator",
	) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	with, without := build(t, "overlays/file"), build(t, dir)
	for _, o := range without {
		if strings.HasPrefix(o.GetAPIVersion(), "monitoring.coreos.com/") {
			t.Errorf("%s %s still in the build", o.GetKind(), o.GetName())
		}
	}
	if len(without) != len(with)-2 {
		t.Errorf("%d objects, want %d (all but the ServiceMonitor and the PrometheusRule)", len(without), len(with)-2)
	}
}

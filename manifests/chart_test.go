package manifests_test

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/meshca/meshca/ca/catest"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// helmOnlyLabels are the labels Helm charts conventionally add; the kustomize build has none of them.
var helmOnlyLabels = []string{"helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
	"app.kubernetes.io/version"}

var configMapHash = regexp.MustCompile(`^meshca-config-[a-z0-9]{10}$`)

// normalize returns the objects by kind/name with what may legitimately differ between a Helm rendering and a
// kustomize build taken out: Helm's labels, the config ConfigMap's hash suffix (kustomize) and checksum
// annotation (Helm), and the configuration file's layout and comments (compared as parsed YAML).
func normalize(t *testing.T, objs []*unstructured.Unstructured) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, o := range objs {
		o = o.DeepCopy()
		labels := o.GetLabels()
		for _, l := range helmOnlyLabels {
			delete(labels, l)
		}
		o.SetLabels(labels)
		if o.GetKind() == "ConfigMap" && configMapHash.MatchString(o.GetName()) {
			o.SetName("meshca-config")
		}
		if o.GetKind() == "ConfigMap" && o.GetName() == "meshca-config" {
			data, _, _ := unstructured.NestedString(o.Object, "data", "config.yaml")
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
				t.Fatalf("config.yaml: %v", err)
			}
			o.Object["data"] = map[string]any{"config.yaml": cfg}
		}
		if o.GetKind() == "Deployment" {
			unstructured.RemoveNestedField(o.Object, "spec", "template", "metadata", "annotations", "checksum/config")
			vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
			for _, v := range vols {
				cm, ok := v.(map[string]any)["configMap"].(map[string]any)
				if ok && configMapHash.MatchString(cm["name"].(string)) {
					cm["name"] = "meshca-config"
				}
			}
			_ = unstructured.SetNestedSlice(o.Object, vols, "spec", "template", "spec", "volumes")
		}
		key := o.GetKind() + "/" + o.GetName()
		if _, dup := out[key]; dup {
			t.Fatalf("%s twice", key)
		}
		out[key] = o.Object
	}
	return out
}

// The chart renders the kustomize build's objects: for each value set that has a kustomize counterpart, the
// same kinds and names, and each object equal field by field (RBAC rules, container args, ports, probes,
// volumes, security contexts, the parsed configuration, alerts, dashboard) once Helm's own labels and the
// config hash are set aside. So the two cannot drift apart silently.
func TestChartMatchesKustomize(t *testing.T) {
	catest.Binary(t, "helm")
	for _, vs := range valueSets {
		if vs.kustomize == "" {
			continue
		}
		t.Run(vs.name, func(t *testing.T) {
			rendered, err := helmTemplate(t, vs.args...)
			if err != nil {
				t.Fatal(err)
			}
			chart, kust := normalize(t, rendered), normalize(t, build(t, vs.kustomize))
			if !vs.monitoring {
				// The chart leaves the Prometheus Operator objects off by default (as istio-csr's does).
				delete(kust, "ServiceMonitor/meshca")
				delete(kust, "PrometheusRule/meshca")
			}
			if got, want := keys(chart), keys(kust); !slices.Equal(got, want) {
				t.Fatalf("chart renders %v, kustomize build %s has %v", got, vs.kustomize, want)
			}
			for k, want := range kust {
				if d := diff(k, chart[k], want, 5); len(d) > 0 {
					t.Errorf("%s differs from kustomize build %s:\n  %s", k, vs.kustomize, strings.Join(d, "\n  "))
				}
			}
		})
	}
}

func keys(m map[string]map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// diff lists up to max paths at which got and want differ.
func diff(path string, got, want any, max int) []string {
	if reflect.DeepEqual(got, want) {
		return nil
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		var out []string
		all := map[string]bool{}
		for k := range w {
			all[k] = true
		}
		for k := range g {
			all[k] = true
		}
		var ks []string
		for k := range all {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			if len(out) >= max {
				break
			}
			out = append(out, diff(path+"."+k, g[k], w[k], max-len(out))...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			break
		}
		var out []string
		for i := range w {
			if len(out) >= max {
				break
			}
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), g[i], w[i], max-len(out))...)
		}
		return out
	}
	return []string{fmt.Sprintf("%s: chart %s, kustomize %s", path, brief(got), brief(want))}
}

func brief(v any) string {
	b, _ := yaml.Marshal(v)
	s := strings.TrimSpace(string(b))
	if v == nil {
		s = "(absent)"
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.ReplaceAll(s, "\n", " ⏎ ")
}

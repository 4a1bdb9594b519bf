package istiomanifests

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"istio.io/istio/operator/pkg/helm"
	"istio.io/istio/operator/pkg/manifest"
	"istio.io/istio/operator/pkg/render"
	"istio.io/istio/operator/pkg/values"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

const (
	caAddress   = "meshca.istio-system.svc:15012"
	trustDomain = "cluster.local" // meshca's issuance.trustDomain in manifests/base/config.yaml
	dir         = "../../manifests/istio/"
)

// rendered is what Istio's installer produced for one input.
type rendered struct{ objs []manifest.Manifest }

func (r rendered) find(kind, name string, into any) bool {
	for _, m := range r.objs {
		if m.GetKind() == kind && m.GetName() == name {
			return runtime.DefaultUnstructuredConverter.FromUnstructured(m.Object, into) == nil
		}
	}
	return false
}

// renderOperator renders an IstioOperator file as istioctl install does, after Istio's own validation
// (unknown values are errors).
func renderOperator(t *testing.T, file string) rendered {
	t.Helper()
	sets, _, err := render.GenerateManifest([]string{dir + file}, nil, false, nil, nil)
	if err != nil {
		t.Fatalf("istioctl manifest generate -f %s: %v", file, err)
	}
	var r rendered
	for _, s := range sets {
		r.objs = append(r.objs, s.Manifests...)
	}
	return r
}

// renderHelm renders one of Istio's charts with a values file, as helm install -f does.
func renderHelm(t *testing.T, chart, file string) rendered {
	t.Helper()
	b, err := os.ReadFile(dir + file)
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.UnmarshalStrict(b, &vals); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	objs, _, err := helm.Render("istio", "istio-system", chart, values.MakeMap(vals, "spec", "values"), nil)
	if err != nil {
		t.Fatalf("helm template %s -f %s: %v", chart, file, err)
	}
	return rendered{objs}
}

// istiodProblems lists how the rendered istiod misses meshca: istiod must run without its CA (no workload
// signing, no istio-ca-root-cert writes), the injector must give every sidecar and gateway CA_ADDR=meshca, and
// the mesh's trust domain must be meshca's.
func istiodProblems(r rendered, wantTrustedNodes bool) []string {
	var p []string
	var d appsv1.Deployment
	if !r.find("Deployment", "istiod", &d) {
		return []string{"no istiod Deployment rendered"}
	}
	env := map[string]string{}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "discovery" {
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
		}
	}
	if env["ENABLE_CA_SERVER"] != "false" {
		p = append(p, fmt.Sprintf("istiod ENABLE_CA_SERVER=%q, want \"false\"", env["ENABLE_CA_SERVER"]))
	}
	if wantTrustedNodes && env["CA_TRUSTED_NODE_ACCOUNTS"] != "istio-system/ztunnel" {
		p = append(
			p,
			fmt.Sprintf(
				"istiod CA_TRUSTED_NODE_ACCOUNTS=%q, want istio-system/ztunnel",
				env["CA_TRUSTED_NODE_ACCOUNTS"],
			),
		)
	}
	var inj corev1.ConfigMap
	if !r.find("ConfigMap", "istio-sidecar-injector", &inj) {
		return append(p, "no istio-sidecar-injector ConfigMap rendered")
	}
	var injVals struct {
		Global struct {
			CAAddress string `json:"caAddress"`
		} `json:"global"`
	}
	if err := json.Unmarshal([]byte(inj.Data["values"]), &injVals); err != nil ||
		injVals.Global.CAAddress != caAddress {
		p = append(
			p,
			fmt.Sprintf("sidecar injector global.caAddress %q (%v), want %q", injVals.Global.CAAddress, err, caAddress),
		)
	}
	var mesh corev1.ConfigMap
	if !r.find("ConfigMap", "istio", &mesh) {
		return append(p, "no istio mesh ConfigMap rendered")
	}
	var mc struct {
		TrustDomain string `json:"trustDomain"`
	}
	if err := yaml.Unmarshal([]byte(mesh.Data["mesh"]), &mc); err != nil || mc.TrustDomain != trustDomain {
		p = append(p, fmt.Sprintf("meshConfig.trustDomain %q (%v), want %q", mc.TrustDomain, err, trustDomain))
	}
	return p
}

func checkIstiod(t *testing.T, r rendered, wantTrustedNodes bool) {
	t.Helper()
	for _, p := range istiodProblems(r, wantTrustedNodes) {
		t.Error(p)
	}
}

// checkZtunnel: ztunnel asks meshca for certificates.
func checkZtunnel(t *testing.T, r rendered) {
	t.Helper()
	var ds appsv1.DaemonSet
	if !r.find("DaemonSet", "ztunnel", &ds) {
		t.Fatal("no ztunnel DaemonSet rendered")
	}
	for _, c := range ds.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == "CA_ADDRESS" {
				if e.Value != caAddress {
					t.Errorf("ztunnel CA_ADDRESS %q, want %q", e.Value, caAddress)
				}
				return
			}
		}
	}
	t.Error("ztunnel has no CA_ADDRESS")
}

func TestIstioOperatorSidecar(t *testing.T) {
	checkIstiod(t, renderOperator(t, "istiooperator.yaml"), false)
}

func TestIstioOperatorAmbient(t *testing.T) {
	r := renderOperator(t, "istiooperator-ambient.yaml")
	checkIstiod(t, r, true)
	checkZtunnel(t, r)
}

func TestHelmValues(t *testing.T) {
	checkIstiod(t, renderHelm(t, "istio-control/istio-discovery", "values-istiod.yaml"), true)
	checkZtunnel(t, renderHelm(t, "ztunnel", "values-ztunnel.yaml"))
}

// The checks are real: istiod rendered with Istio's defaults fails those that meshca changes (the defaults
// already trust istio-system/ztunnel and use cluster.local).
func TestDefaultsFailTheChecks(t *testing.T) {
	objs, _, err := helm.Render(
		"istio",
		"istio-system",
		"istio-control/istio-discovery",
		values.MakeMap(map[string]any{}, "spec", "values"),
		nil,
	)
	if err != nil {
		t.Fatal(err)
	}
	p := istiodProblems(rendered{objs}, true)
	if len(p) != 2 || !strings.Contains(p[0], "ENABLE_CA_SERVER") || !strings.Contains(p[1], "caAddress") {
		t.Errorf("istiod with Istio's defaults: problems %q, want ENABLE_CA_SERVER and caAddress", p)
	}
}

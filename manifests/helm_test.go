package manifests_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshca/meshca/ca/catest"
)

const chartDir = "helm/meshca"

// helmTemplate renders the chart as `helm install meshca -n istio-system` would, with --set and --values args.
// A failure returns an error that carries helm's exit status (*exec.ExitError) and its stderr.
func helmTemplate(t *testing.T, args ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	cmd := exec.Command(catest.Binary(t, "helm"),
		append([]string{"template", "meshca", chartDir, "--namespace", "istio-system"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &helmError{err: err, stderr: stderr.String()}
	}
	objs, err := catest.DecodeYAML(out)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	return objs, nil
}

type helmError struct {
	err    error
	stderr string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + e.stderr }
func (e *helmError) Unwrap() error { return e.err }

// valueSets are the renderings tested: each backend, multi-cluster, monitoring, and one with most knobs turned.
var valueSets = []struct {
	name string
	args []string
	// kustomize is the build this rendering must equal ("" for none).
	kustomize string
	// monitoring is true when the rendering includes the ServiceMonitor and PrometheusRule.
	monitoring bool
}{
	{"the defaults", nil, "base", false},
	{"the defaults with Prometheus Operator objects", []string{"--set",
		"app.metrics.service.servicemonitor.enabled=true,app.metrics.prometheusRule.enabled=true"}, "base", true},
	{"the file backend with the Secret mounted", []string{"--set", "app.backend.file.source=mount"},
		"overlays/file", false},
	{"the vault backend", []string{"--set", "app.backend.kind=vault"}, "overlays/vault", false},
	{"the step-ca backend", []string{"--set", "app.backend.kind=stepca"}, "overlays/stepca", false},
	{"multi-cluster", []string{"--set", "app.multicluster.enabled=true"}, "overlays/multicluster", false},
	{"the expiry scanner", []string{"--set", "app.expiryScanner.enabled=true"}, "", false},
	{"Istio's ClusterTrustBundle names", []string{"--set", "app.trustBundle.istioClusterTrustBundle=true"},
		"overlays/istio-trust-bundle", false},
	{"the Kubernetes CSR signer", []string{"--set", "app.k8sSigner.enabled=true"}, "overlays/k8s-signer", false},
	{"root rotation with replicas", []string{"--set", "app.rotation.enabled=true"}, "overlays/root-rotation", false},
	{"most values changed", []string{"--values", "testdata/helm/custom-values.yaml"}, "", true},
}

func TestChartLint(t *testing.T) {
	out, err := exec.Command(catest.Binary(t, "helm"), "lint", "--strict", chartDir).CombinedOutput()
	if err != nil {
		t.Fatalf("helm lint --strict: %v\n%s", err, out)
	}
}

// Every rendering passes the real API server's validation, defaulting, admission and RBAC escalation checks
// in a server-side dry run with strict field validation, as the kustomize builds do (TestServerSideDryRun).
func TestChartServerSideDryRun(t *testing.T) {
	catest.Binary(t, "helm")
	k := catest.SharedKube(t)
	installCRDs(t, k)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs, err := helmTemplate(t, vs.args...)
			if err != nil {
				t.Fatal(err)
			}
			if err := catest.Apply(context.Background(), k.Config, objs,
				catest.ApplyOptions{DryRun: true}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// values.schema.json refuses a bad value before anything renders: helm template exits non-zero naming it.
func TestChartSchemaRefuses(t *testing.T) {
	cases := []struct {
		name, set, field string
	}{
		{"a replica count that is not a number", "replicaCount=two", "/replicaCount"},
		{"the moving tag latest", "image.tag=latest", "/image/tag"},
		{"a duration Go cannot parse", "app.server.maxCertificateDuration=1day", "/app/server/maxCertificateDuration"},
		{"an unknown backend", "app.backend.kind=pkcs11", "/app/backend/kind"},
		{"a misspelt value", "app.server.maxCertificateDurtion=1h", "maxCertificateDurtion"},
		{"a port out of range", "app.metrics.port=70000", "/app/metrics/port"},
		{"a node account without a namespace", "app.server.caTrustedNodeAccounts=ztunnel",
			"/app/server/caTrustedNodeAccounts"},
		{"a log level meshca does not have", "app.logLevel=5", "/app/logLevel"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := helmTemplate(t, "--set", c.set)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("helm template --set %s: %v, want a non-zero exit", c.set, err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Fatalf("helm template --set %s failed without naming %s: %v", c.set, c.field, err)
			}
		})
	}
}

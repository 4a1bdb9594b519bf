package manifests_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/meshca/meshca/ca/catest"
)

// ruleGroups returns the PrometheusRule's spec.groups as built by kustomize.
func ruleGroups(t *testing.T) []any {
	t.Helper()
	rule := find(t, build(t, "base"), "PrometheusRule", "meshca")
	groups, _, err := unstructured.NestedSlice(rule.Object, "spec", "groups")
	if err != nil || len(groups) == 0 {
		t.Fatalf("PrometheusRule spec.groups: %v", err)
	}
	return groups
}

// rulesDir writes the rule groups for promtool into a new directory: full.yaml as shipped and rules.yaml
// without annotations (the tests assert labels; check rules checks the templates), with edit applied to each
// rule first; and copies of the unit tests in testdata/rules.
func rulesDir(t *testing.T, edit func(rule map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	groups := ruleGroups(t)
	write := func(name string, v any) {
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range groups {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			if edit != nil {
				edit(r.(map[string]any))
			}
		}
	}
	write("full.yaml", map[string]any{"groups": groups})
	for _, g := range groups {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			delete(r.(map[string]any), "annotations")
		}
	}
	write("rules.yaml", map[string]any{"groups": groups})
	for _, f := range ruleTestFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func ruleTestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "rules", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool tests in testdata/rules: %v", err)
	}
	return files
}

// runPromtool runs promtool in dir and returns its combined output and whether it succeeded.
func runPromtool(t *testing.T, dir string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(catest.Binary(t, "promtool"), args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("running promtool: %v", err)
	}
	return out.String(), err == nil
}

func testArgs(t *testing.T, extra ...string) []string {
	args := []string{"test", "rules"}
	args = append(args, extra...)
	for _, f := range ruleTestFiles(t) {
		args = append(args, filepath.Base(f))
	}
	return args
}

// The shipped rules pass promtool check rules (syntax, templates) and every promtool unit test in
// testdata/rules.
func TestAlertRules(t *testing.T) {
	dir := rulesDir(t, nil)
	if out, ok := runPromtool(t, dir, "check", "rules", "full.yaml"); !ok {
		t.Fatalf("promtool check rules:\n%s", out)
	}
	if out, ok := runPromtool(t, dir, testArgs(t)...); !ok {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// ruleTests reads the promtool tests: for each alert, how many cases expect it to fire and how many expect
// silence, and the test group names.
func ruleTests(t *testing.T) (fires, silent map[string]int, groups []string) {
	t.Helper()
	fires, silent = map[string]int{}, map[string]int{}
	for _, f := range ruleTestFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			RuleFiles []string `json:"rule_files"`
			Tests     []struct {
				Name      string `json:"name"`
				AlertTest []struct {
					Alertname string `json:"alertname"`
					ExpAlerts []any  `json:"exp_alerts"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil { // promtool itself refuses unknown fields
			t.Fatalf("%s: %v", f, err)
		}
		if !slices.Equal(doc.RuleFiles, []string{"rules.yaml"}) {
			t.Errorf("%s: rule_files %v, want [rules.yaml]", f, doc.RuleFiles)
		}
		for _, tg := range doc.Tests {
			groups = append(groups, tg.Name)
			for _, a := range tg.AlertTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname]++
				} else {
					silent[a.Alertname]++
				}
			}
		}
	}
	return fires, silent, groups
}

// Every alert has promtool tests: a case where it fires and one where it stays silent, in a test group named
// after it; and the tests name no alert that does not exist.
func TestEveryAlertHasRuleTests(t *testing.T) {
	fires, silent, groups := ruleTests(t)
	alerts, _ := shippedQueries(t)
	names := map[string]bool{}
	for _, a := range alerts {
		name := a["alert"].(string)
		names[name] = true
		if fires[name] == 0 {
			t.Errorf("alert %s: no promtool test case where it fires", name)
		}
		if silent[name] == 0 {
			t.Errorf("alert %s: no promtool test case where it stays silent", name)
		}
		if !slices.ContainsFunc(groups, func(g string) bool { return strings.HasPrefix(g, name+" ") }) {
			t.Errorf("alert %s: no test group named \"%s ...\"", name, name)
		}
	}
	for name := range fires {
		if !names[name] {
			t.Errorf("the promtool tests check alert %s, which the PrometheusRule does not have", name)
		}
	}
}

// mutations are deliberate breakages, each of which a promtool test must catch.
var mutations = []struct {
	name, alert, from, to string
}{
	{"the 30 day CA threshold becomes 28", "MeshcaCACertificateExpiringSoon", "< 30 * 86400", "< 28 * 86400"},
	{"the stuck-identity query loses its max over replicas", "MeshcaIdentityNotRenewed",
		"max by (trust_domain, namespace, service_account) " +
			"(meshca_identity_renewal_deadline_timestamp_seconds) < time()",
		"meshca_identity_renewal_deadline_timestamp_seconds < time()"},
	{"the stuck-identity query joins identities instead of pods", "MeshcaIdentityNotRenewed",
		"(kube_pod_service_account)\n  or", "(meshca_identity_renewal_deadline_timestamp_seconds)\n  or"},
	{"the identity expiry threshold becomes 30 minutes", "MeshcaIdentityCertificateExpiring", "< 3600", "< 1800"},
	{"the CRL staleness point moves to 90%", "MeshcaCRLStale", "> 0.75", "> 0.9"},
	{"the serving certificate threshold becomes a tenth", "MeshcaServingCertificateExpiring", "0.2 *", "0.1 *"},
	{"scanned CA certificates are grouped per copy", "MeshcaScannedCACertificateExpiringSoon",
		"min by (cluster, subject, serial)", "min by (cluster, namespace, subject, serial)"},
	{"scanned certificates include CAs", "MeshcaScannedCertificateExpiring", `{ca="false"}`, ""},
	{"a holder overdue on one replica only is enough", "MeshcaRotationHoldersOverdue", "max without", "min without"},
}

// A broken rule fails the promtool tests: every alert made never to fire, and each targeted mutation, is
// caught; so the tests do check what the rules compute.
func TestBrokenRulesFailPromtool(t *testing.T) {
	alerts, _ := shippedQueries(t)
	type mutation struct{ name, alert, from, to string }
	var all []mutation
	for _, a := range alerts {
		name := a["alert"].(string)
		all = append(all, mutation{"never fires", name, "", ""})
	}
	for _, m := range mutations {
		all = append(all, mutation(m))
	}
	for _, m := range all {
		t.Run(m.alert+" "+m.name, func(t *testing.T) {
			applied := false
			dir := rulesDir(t, func(r map[string]any) {
				if r["alert"] != m.alert {
					return
				}
				expr := r["expr"].(string)
				switch {
				case m.from == "":
					r["expr"] = "vector(0) > 1"
					applied = true
				case strings.Contains(expr, m.from):
					r["expr"] = strings.Replace(expr, m.from, m.to, 1)
					applied = true
				}
			})
			if !applied {
				t.Fatalf("mutation %q does not apply to %s's expression", m.from, m.alert)
			}
			if out, ok := runPromtool(t, dir, "check", "rules", "full.yaml"); !ok {
				t.Fatalf("the mutated rules do not parse (the mutation should break behaviour, not syntax):\n%s", out)
			}
			out, ok := runPromtool(t, dir, testArgs(t, "--run", "^"+regexp.QuoteMeta(m.alert)+" ")...)
			if ok {
				t.Errorf("promtool test rules passed with the broken rule:\n%s", out)
			}
			if !strings.Contains(out, "alertname: "+m.alert) {
				t.Errorf("the failure does not name %s:\n%s", m.alert, out)
			}
		})
	}
}

// A rule that does not parse fails promtool check rules.
func TestUnparsableRuleFailsPromtool(t *testing.T) {
	dir := rulesDir(t, func(r map[string]any) {
		if r["alert"] == "MeshcaDown" {
			r["expr"] = "absent(up{job=\"meshca\"} == 1"
		}
	})
	if out, ok := runPromtool(t, dir, "check", "rules", "full.yaml"); ok {
		t.Errorf("promtool check rules accepted an unbalanced expression:\n%s", out)
	}
}

// Every dashboard query parses as PromQL: each becomes a recording rule (Grafana's variables replaced by
// values) for promtool check rules.
func TestDashboardQueriesParse(t *testing.T) {
	_, queries := shippedQueries(t)
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$job", ".*", "${job}", ".*")
	var rules []map[string]any
	for i, q := range queries {
		if strings.HasPrefix(q.where, "panel ") {
			rules = append(rules, map[string]any{"record": fmt.Sprintf("dashboard:query_%d", i),
				"expr": vars.Replace(q.expr)})
		}
	}
	dir := t.TempDir()
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := runPromtool(t, dir, "check", "rules", "dashboard.yaml"); !ok {
		t.Errorf("dashboard queries:\n%s", out)
	}
}

// Every alert links to its own section of docs/runbooks.md, which says what it means and what to do.
func TestAlertsHaveRunbooks(t *testing.T) {
	doc, err := os.ReadFile("../docs/runbooks.md")
	if err != nil {
		t.Fatal(err)
	}
	alerts, _ := shippedQueries(t)
	for _, a := range alerts {
		name := a["alert"].(string)
		ann, _ := a["annotations"].(map[string]any)
		want := "https://github.com/meshca/meshca/blob/main/docs/runbooks.md#" + strings.ToLower(name)
		if ann["runbook_url"] != want {
			t.Errorf("alert %s: runbook_url %v, want %s", name, ann["runbook_url"], want)
		}
		section := regexp.MustCompile(`(?s)\n### ` + name + `\n(.*?)(\n#|$)`).FindSubmatch(doc)
		if section == nil {
			t.Errorf("alert %s: no \"### %s\" section in docs/runbooks.md", name, name)
			continue
		}
		body := string(section[1])
		if !strings.Contains(body, "**What it means.**") || !strings.Contains(body, "**What to do.**") {
			t.Errorf("alert %s: its runbook section lacks \"What it means\" or \"What to do\"", name)
		}
	}
}

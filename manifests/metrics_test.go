package manifests_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// query is one PromQL expression shipped in the alerts or the dashboard.
type query struct{ where, expr string }

// shippedQueries returns the PrometheusRule's expressions and the dashboard's panel queries, as built.
func shippedQueries(t *testing.T) (alerts []map[string]any, queries []query) {
	t.Helper()
	objs := build(t, "base")
	rule := find(t, objs, "PrometheusRule", "meshca")
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	for _, g := range groups {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			r := r.(map[string]any)
			alerts = append(alerts, r)
			queries = append(queries, query{"alert " + r["alert"].(string), r["expr"].(string)})
		}
	}
	dash := find(t, objs, "ConfigMap", "meshca-dashboard")
	var board struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	data, _, _ := unstructured.NestedString(dash.Object, "data", "meshca.json")
	if err := json.Unmarshal([]byte(data), &board); err != nil {
		t.Fatal(err)
	}
	for _, p := range board.Panels {
		for _, tg := range p.Targets {
			queries = append(queries, query{"panel " + p.Title, tg.Expr})
		}
	}
	if len(alerts) < 10 || len(queries) < 25 {
		t.Fatalf("found %d alerts and %d queries: the build changed shape", len(alerts), len(queries))
	}
	return alerts, queries
}

var (
	metricName = regexp.MustCompile(`\b(?:meshca|citadel)_[a-z0-9_]+`)
	goLiteral  = regexp.MustCompile(`"([a-z][a-z0-9_]*)"`)
	matcher    = regexp.MustCompile(`\b([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	funcCall   = regexp.MustCompile(`\b([a-z_]+)\s*\(`)
	rangeSel   = regexp.MustCompile(`\[([^\]]*)\]`)
	promDur    = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
)

// goStrings returns every lower-case string literal in meshca's non-test Go sources: metric names and
// label values the alerts and the dashboard may refer to.
func goStrings(t *testing.T) map[string]bool {
	t.Helper()
	lits := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != "..") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range goLiteral.FindAllStringSubmatch(string(b), -1) {
			lits[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lits
}

// Every meshca_ and citadel_ metric, and every label value, that an alert or a dashboard panel uses is one
// meshca's code exports: a renamed metric or reason breaks this test instead of silently blinding an alert.
func TestQueriesUseExportedMetrics(t *testing.T) {
	_, queries := shippedQueries(t)
	lits := goStrings(t)
	if !lits["meshca_csr_requests_total"] {
		t.Fatal("meshca_csr_requests_total not found in the Go sources: the source walk is broken")
	}
	for _, q := range queries {
		for _, name := range metricName.FindAllString(q.expr, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if s, ok := strings.CutSuffix(name, suffix); ok && lits[s] {
					base = s
				}
			}
			if !lits[base] {
				t.Errorf("%s: metric %s is not exported by any Go source", q.where, name)
			}
		}
		for _, m := range matcher.FindAllStringSubmatch(q.expr, -1) {
			label, op, value := m[1], m[2], m[3]
			if label == "job" || label == "le" || value == "" {
				continue
			}
			values := []string{value}
			if op == "=~" || op == "!~" {
				values = strings.Split(value, "|")
			}
			for _, v := range values {
				if !lits[v] {
					t.Errorf("%s: label value %s=%q appears nowhere in the Go sources", q.where, label, v)
				}
			}
		}
	}
}

// promqlFuncs are the PromQL functions and aggregations the shipped queries may use.
var promqlFuncs = []string{"sum", "min", "max", "avg", "count", "rate", "increase", "histogram_quantile",
	"absent", "vector", "time", "bottomk", "by", "without", "on", "ignoring", "group_left", "group_right"}

// promqlOperators are the keyword operators that may precede a parenthesis.
var promqlOperators = []string{"and", "or", "unless"}

// A light syntax check of every query (the Prometheus parser is too heavy a dependency for meshca's go.mod):
// balanced brackets and quotes, known functions, and range selectors Prometheus accepts.
func TestQueriesAreWellFormed(t *testing.T) {
	_, queries := shippedQueries(t)
	for _, q := range queries {
		stack := []rune{}
		inQuote := false
		for _, r := range q.expr {
			switch {
			case r == '"':
				inQuote = !inQuote
			case inQuote:
			case r == '(' || r == '[' || r == '{':
				stack = append(stack, r)
			case r == ')' || r == ']' || r == '}':
				open := map[rune]rune{')': '(', ']': '[', '}': '{'}[r]
				if len(stack) == 0 || stack[len(stack)-1] != open {
					t.Errorf("%s: unbalanced %q in %s", q.where, r, q.expr)
					break
				}
				stack = stack[:len(stack)-1]
			}
		}
		if inQuote || len(stack) > 0 {
			t.Errorf("%s: unclosed quote or bracket in %s", q.where, q.expr)
		}
		for _, m := range funcCall.FindAllStringSubmatch(q.expr, -1) {
			if !slices.Contains(promqlFuncs, m[1]) && !slices.Contains(promqlOperators, m[1]) &&
				!metricName.MatchString(m[1]) {
				t.Errorf("%s: unknown function %s(", q.where, m[1])
			}
		}
		for _, m := range rangeSel.FindAllStringSubmatch(q.expr, -1) {
			if m[1] != "$__rate_interval" && !promDur.MatchString(m[1]) {
				t.Errorf("%s: range [%s] is not a Prometheus duration", q.where, m[1])
			}
		}
	}
}

// Each alert is actionable: a severity the routing knows, a summary and a description, and a duration
// Prometheus parses; and docs/operations.md explains it.
func TestAlertsDocumented(t *testing.T) {
	alerts, _ := shippedQueries(t)
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range alerts {
		name, _ := a["alert"].(string)
		if name == "" || seen[name] {
			t.Errorf("alert %q: empty or duplicate name", name)
		}
		seen[name] = true
		labels, _ := a["labels"].(map[string]any)
		if s := labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("alert %s: severity %v, want warning or critical", name, s)
		}
		ann, _ := a["annotations"].(map[string]any)
		if ann["summary"] == nil || ann["description"] == nil {
			t.Errorf("alert %s: needs summary and description annotations", name)
		}
		if f, ok := a["for"].(string); ok {
			if _, err := time.ParseDuration(f); err != nil || !promDur.MatchString(f) {
				t.Errorf("alert %s: for %q: %v", name, f, err)
			}
		}
		if !strings.Contains(string(doc), name) {
			t.Errorf("alert %s is not described in docs/operations.md", name)
		}
	}
}

// docs/operations.md lists every metric meshca's code registers, so operators can find what a series means.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	registered := regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"((?:meshca|citadel)_[a-z0-9_]+)"`)
	found := 0
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range registered.FindAllStringSubmatch(string(b), -1) {
			found++
			if !strings.Contains(string(doc), "`"+m[1]+"`") {
				t.Errorf("metric %s (%s) is not listed in docs/operations.md", m[1], path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 10 {
		t.Fatalf("found %d registered metrics: the source walk is broken", found)
	}
}

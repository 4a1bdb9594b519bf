package manifests_test

import (
	"bytes"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

var (
	makeImageRepo = regexp.MustCompile(`(?m)^IMAGE_REPO\s*\?=\s*(\S+)\s*$`)
	changelogHead = regexp.MustCompile(`(?m)^## \[(\d+\.\d+\.\d+)\]`)
	semverTag     = regexp.MustCompile(`^v\d+\.\d+\.\d+$`)
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The image every manifest runs is the one make image builds for the release being prepared: the Makefile's
// IMAGE_REPO with the tag v<newest version in CHANGELOG.md>, the same in the kustomize build and the chart
// (appVersion, and the chart's own version), and never latest.
func TestImageReference(t *testing.T) {
	m := makeImageRepo.FindSubmatch(readFile(t, "../Makefile"))
	if m == nil {
		t.Fatal("Makefile has no IMAGE_REPO ?= line")
	}
	repo := string(m[1])
	c := changelogHead.FindSubmatch(readFile(t, "../CHANGELOG.md"))
	if c == nil {
		t.Fatal("CHANGELOG.md has no ## [X.Y.Z] heading")
	}
	want := repo + ":v" + string(c[1])

	for _, dir := range kustomizations(t) {
		d := typed[appsv1.Deployment](t, find(t, build(t, dir), "Deployment", "meshca"))
		if got := d.Spec.Template.Spec.Containers[0].Image; got != want {
			t.Errorf("kustomize %s runs %s, want %s", dir, got, want)
		}
	}
	var chart struct{ Version, AppVersion string }
	if err := yaml.Unmarshal(readFile(t, chartDir+"/Chart.yaml"), &chart); err != nil {
		t.Fatal(err)
	}
	var values struct {
		Image struct{ Repository, Tag string }
	}
	if err := yaml.Unmarshal(readFile(t, chartDir+"/values.yaml"), &values); err != nil {
		t.Fatal(err)
	}
	tag := values.Image.Tag
	if tag == "" {
		tag = chart.AppVersion
	}
	if got := values.Image.Repository + ":" + tag; got != want {
		t.Errorf("the chart runs %s, want %s", got, want)
	}
	if "v"+chart.Version != chart.AppVersion {
		t.Errorf(
			"Chart.yaml version %s, appVersion %s: released together, they are equal",
			chart.Version,
			chart.AppVersion,
		)
	}
	if !semverTag.MatchString(strings.TrimPrefix(want, repo+":")) {
		t.Errorf("%s: the tag is not vMAJOR.MINOR.PATCH", want)
	}
}

// The chart's copies of the alerts and the dashboard are the kustomize base's, byte for byte (cp them over
// after editing manifests/base; TestChartMatchesKustomize compares the rendered objects too).
func TestChartFilesMatchKustomize(t *testing.T) {
	for src, dst := range map[string]string{
		"base/prometheusrule.yaml":    chartDir + "/files/prometheusrule.yaml",
		"base/dashboards/meshca.json": chartDir + "/files/meshca.json",
	} {
		if !bytes.Equal(readFile(t, src), readFile(t, dst)) {
			t.Errorf("%s differs from %s: cp manifests/%s manifests/%s", dst, src, src, dst)
		}
	}
}

// Every value in values.yaml (or the map holding it) appears in docs/helm.md's reference, in backquotes.
func TestChartValuesDocumented(t *testing.T) {
	var values map[string]any
	if err := yaml.Unmarshal(readFile(t, chartDir+"/values.yaml"), &values); err != nil {
		t.Fatal(err)
	}
	doc := string(readFile(t, "../docs/helm.md"))
	var missing []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if strings.Contains(doc, "`"+prefix+"`") {
			return
		}
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 {
			missing = append(missing, prefix)
			return
		}
		for k, sub := range m {
			walk(prefix+"."+k, sub)
		}
	}
	for k, v := range values {
		walk(k, v)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/helm.md does not document %v", missing)
	}
}

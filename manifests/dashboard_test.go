package manifests_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/kubepublish"
)

// dashboardPanel is the part of a Grafana panel the unit checks read.
type dashboardPanel struct {
	ID          int
	Title       string
	Type        string
	FieldConfig struct {
		Defaults struct{ Unit string }
	}
	Targets []struct{ Expr string }
	Panels  []dashboardPanel
}

var (
	rateOf        = regexp.MustCompile(`\b(?:rate|irate)\(\s*([a-z_:][a-z0-9_:]*)`)
	requestSeries = regexp.MustCompile(`(?:_requests_total|_duration_seconds_count)$`)
	timeLeft      = regexp.MustCompile(`- time\(\)|time\(\) -|_expiry_seconds\b`)
)

// Every panel states its unit, and the unit fits the query: request rates only for counters of requests,
// seconds for latencies and times left, a ratio for ratios (a "Lifetimes adjusted" panel once said req/s).
func TestDashboardPanelUnits(t *testing.T) {
	raw, err := os.ReadFile("base/dashboards/meshca.json")
	if err != nil {
		t.Fatal(err)
	}
	var board struct{ Panels []dashboardPanel }
	if err := json.Unmarshal(raw, &board); err != nil {
		t.Fatal(err)
	}
	var all []dashboardPanel
	var flatten func([]dashboardPanel)
	flatten = func(ps []dashboardPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				flatten(p.Panels)
				continue
			}
			all = append(all, p)
		}
	}
	flatten(board.Panels)
	if len(all) < 25 {
		t.Fatalf("found %d panels: the dashboard changed shape", len(all))
	}
	for _, p := range all {
		unit := p.FieldConfig.Defaults.Unit
		if unit == "" {
			t.Errorf("panel %d %q has no unit", p.ID, p.Title)
			continue
		}
		for _, tg := range p.Targets {
			switch {
			case timeLeft.MatchString(tg.Expr) && !strings.Contains(tg.Expr, " / ") && unit != "s" &&
				unit != "dtdurations":
				t.Errorf("panel %q shows a time (%s) in %q, want s or dtdurations", p.Title, tg.Expr, unit)
			case regexp.MustCompile(`histogram_quantile`).MatchString(tg.Expr) && unit != "s":
				t.Errorf("panel %q shows a latency in %q, want s", p.Title, unit)
			}
			if unit != "reqps" {
				continue
			}
			for _, m := range rateOf.FindAllStringSubmatch(tg.Expr, -1) {
				if !requestSeries.MatchString(m[1]) {
					t.Errorf("panel %q shows rate(%s) as requests per second; it does not count requests "+
						"(use cps or ops)", p.Title, m[1])
				}
			}
		}
	}
}

// describedNames records the metric names of the collectors registered on it.
type describedNames map[string]bool

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (n describedNames) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			n[m[1]] = true
		}
	}
	return nil
}

func (n describedNames) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = n.Register(c)
	}
}

func (n describedNames) Unregister(prometheus.Collector) bool { return false }

// noCRLs is a kubepublish source that never has content; the test only registers metrics.
type noCRLs struct{}

func (noCRLs) PEM() ([]byte, bool)      { return nil, false }
func (noCRLs) Changed() <-chan struct{} { return nil }

// The dashboard's Revocation row shows every revocation metric, and every metric its panels query is one that
// the revocation packages register (crl.NewMetrics, crl/kubepublish): a renamed metric fails here rather than
// leaving an empty panel. Byte sizes are shown in bytes.
func TestDashboardShowsRevocation(t *testing.T) {
	exported := describedNames{}
	m, err := crl.NewMetrics(exported)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubepublish.New(kubepublish.Config{Kube: &rest.Config{Host: "https://127.0.0.1:1"},
		Source: noCRLs{}, Registerer: exported, Metrics: m, LeaseNamespace: "istio-system"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("base/dashboards/meshca.json")
	if err != nil {
		t.Fatal(err)
	}
	var board struct{ Panels []dashboardPanel }
	if err := json.Unmarshal(raw, &board); err != nil {
		t.Fatal(err)
	}
	queried := map[string]bool{}
	inRow := false
	for _, p := range board.Panels {
		if p.Type == "row" {
			inRow = p.Title == "Revocation"
			continue
		}
		if !inRow {
			continue
		}
		for _, tg := range p.Targets {
			for _, name := range regexp.MustCompile(`\bmeshca_[a-z0-9_]+`).FindAllString(tg.Expr, -1) {
				queried[name] = true
				if !exported[name] {
					t.Errorf("panel %q queries %s, which the revocation packages do not export", p.Title, name)
				}
				if strings.HasSuffix(name, "_bytes") && p.FieldConfig.Defaults.Unit != "bytes" {
					t.Errorf("panel %q shows %s in %q, want bytes", p.Title, name, p.FieldConfig.Defaults.Unit)
				}
			}
		}
	}
	if len(exported) < 10 {
		t.Fatalf("only %d metrics described: the registration changed shape", len(exported))
	}
	for name := range exported {
		if !queried[name] {
			t.Errorf("no panel of the Revocation row shows %s", name)
		}
	}
}

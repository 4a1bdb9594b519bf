package manifests_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
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

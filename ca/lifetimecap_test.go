package ca_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
)

// A lifetime cap in force (a root rotation lowers it so later phases wait for short-lived leaves only) cuts
// longer requests, counted as capped_by_rotation; shorter requests and a cap of 0 (none) are left alone.
func TestLifetimeCapCutsLongerLeaves(t *testing.T) {
	tests := []struct {
		name       string
		cap, ttl   time.Duration
		want       time.Duration
		wantCapped float64
	}{
		{"a request longer than the cap is cut to it", 10 * time.Minute, time.Hour, 10 * time.Minute, 1},
		{"a request as long as the cap is left alone", time.Hour, time.Hour, time.Hour, 0},
		{"a request shorter than the cap is left alone", 3 * time.Hour, 2 * time.Hour, 2 * time.Hour, 0},
		{"no cap in force", 0, 2 * time.Hour, 2 * time.Hour, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := catest.FileCA(t)
			reg := prometheus.NewRegistry()
			i, dev := newIssuerWith(t, ca.Config{Registerer: reg, LifetimeCap: func() time.Duration { return tt.cap },
				Backends: []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, nil)}}})
			r := request(t, dev)
			r.TTL = tt.ttl
			res, err := i.Issue(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			leaf := res.Chain[0]
			if got := leaf.NotAfter.Sub(leaf.NotBefore); got < tt.want-2*time.Minute || got > tt.want+2*time.Minute {
				t.Fatalf("leaf lives %s, want about %s", got, tt.want)
			}
			capped := adjusted(t, reg, "capped_by_rotation")
			if capped != tt.wantCapped {
				t.Fatalf("meshca_ttl_adjusted_total{how=capped_by_rotation} = %g, want %g", capped, tt.wantCapped)
			}
		})
	}
}

// adjusted is meshca_ttl_adjusted_total{how=how} in reg, 0 when absent.
func adjusted(t *testing.T, reg *prometheus.Registry, how string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "meshca_ttl_adjusted_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "how" && l.GetValue() == how {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

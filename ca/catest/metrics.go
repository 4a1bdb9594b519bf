package catest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Sample returns the value of the first series of the counter or gauge name whose labels include want (nil
// matches any series), and whether there is one.
func Sample(tb testing.TB, g prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

package rotation

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	holdersByStatusDesc = prometheus.NewDesc("meshca_rotation_holders",
		"Holders of a trust bundle (pods, ztunnel per identity, identities without pod claims) with an unexpired "+
			"certificate, by status against the phase's gate: current (has what it needs), lagging (will "+
			"renew in time), overdue (past its renewal time).", []string{"status"}, nil)
	leavesByCADesc = prometheus.NewDesc("meshca_rotation_leaves",
		"Unexpired leaves of the tracked holders by the CA that issued them (subject and sha256 prefix).",
		[]string{"ca"}, nil)
	gateRatioDesc = prometheus.NewDesc("meshca_rotation_gate_progress_ratio",
		"Share of holders that have what the gate needs: bundle (the new root), leaf (a leaf from the new CA).",
		[]string{"gate"}, nil)
	gateETADesc = prometheus.NewDesc("meshca_rotation_gate_eta_timestamp_seconds",
		"When the phase's gate should open (every lagging holder renewed, every overdue one expired); absent "+
			"when the phase has no gate.", nil, nil)
)

// ProgressCollector exports the per-holder metrics of the progress report: holders by status, leaves by CA,
// each gate's progress and the ETA. progress is called at every scrape.
func ProgressCollector(progress func() *Progress) prometheus.Collector {
	return progressCollector(progress)
}

type progressCollector func() *Progress

func (progressCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{holdersByStatusDesc, leavesByCADesc, gateRatioDesc, gateETADesc} {
		ch <- d
	}
}

func (f progressCollector) Collect(ch chan<- prometheus.Metric) {
	p := f()
	current, lagging, overdue := p.Holders, 0, 0
	for _, g := range p.Gates {
		ch <- prometheus.MustNewConstMetric(gateRatioDesc, prometheus.GaugeValue, g.Percent()/100, g.Name)
		if g.Active {
			current, lagging, overdue = g.Done, g.Lagging, g.Overdue
			ch <- prometheus.MustNewConstMetric(gateETADesc, prometheus.GaugeValue, float64(g.ETA.Unix()))
		}
	}
	for _, s := range []struct {
		status string
		n      int
	}{{"current", current}, {"lagging", lagging}, {"overdue", overdue}} {
		ch <- prometheus.MustNewConstMetric(holdersByStatusDesc, prometheus.GaugeValue, float64(s.n), s.status)
	}
	for _, c := range p.CAs {
		ch <- prometheus.MustNewConstMetric(leavesByCADesc, prometheus.GaugeValue, float64(c.Count), c.Name)
	}
}

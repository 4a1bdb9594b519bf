package rotation

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	phaseDesc = prometheus.NewDesc("meshca_rotation_phase", "1 for the root rotation's current phase.",
		[]string{"phase"}, nil)
	genDesc = prometheus.NewDesc("meshca_rotation_generation",
		"Transitions of the root rotation so far, as this replica last read the state.", nil, nil)
	pausedDesc  = prometheus.NewDesc("meshca_rotation_paused", "1 while the root rotation is paused.", nil, nil)
	leadingDesc = prometheus.NewDesc("meshca_rotation_leading",
		"1 while this replica may change the rotation state (holds the Lease, or uses a state file).", nil, nil)
	gateDesc = prometheus.NewDesc("meshca_rotation_gate_open",
		"1 when the step to the next phase keeps every workload's trust, as this replica sees it.", nil, nil)
	deadlineDesc = prometheus.NewDesc("meshca_rotation_gate_deadline_timestamp_seconds",
		"When the current gate should be open at the latest: the phase's start plus one maximum lifetime, or "+
			"when the tracker becomes complete if later.", nil, nil)
	capDesc = prometheus.NewDesc("meshca_rotation_max_leaf_lifetime_seconds",
		"The lifetime cap the rotation puts on workload certificates; 0 for none.", nil, nil)
	holdersDesc = prometheus.NewDesc("meshca_rotation_workloads",
		"Identities with an unexpired certificate, by whether their last trust bundle held the next root "+
			"(bundle) and whether their leaf chains to it (leaf).", []string{"what", "next_root"}, nil)
	completeDesc = prometheus.NewDesc("meshca_rotation_tracker_complete",
		"1 when the rotation tracker has seen every unexpired certificate.", nil, nil)
	droppedDesc = prometheus.NewDesc("meshca_rotation_untracked_total",
		"Issuances not tracked because rotation.maxIdentities was reached.", nil, nil)
)

var allPhases = []Phase{PhaseIdle, PhaseStaged, PhasePublishing, PhaseActivated, PhaseRetiring}

// collector computes the rotation metrics at scrape time.
type collector struct{ c *Controller }

func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{phaseDesc, genDesc, pausedDesc, leadingDesc, gateDesc, deadlineDesc,
		capDesc, holdersDesc, completeDesc, droppedDesc} {
		ch <- d
	}
}

func (m *collector) Collect(ch chan<- prometheus.Metric) {
	s := m.c.State()
	p := m.c.progressOf(s)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, ph := range allPhases {
		gauge(phaseDesc, b2f(ph == s.Phase), string(ph))
	}
	gauge(genDesc, float64(s.Generation))
	gauge(pausedDesc, b2f(s.Paused))
	gauge(leadingDesc, b2f(m.c.Leading()))
	gauge(capDesc, s.LifetimeCap().Seconds())
	if s.Phase != PhaseIdle {
		gauge(gateDesc, b2f(s.Gate(p) == nil))
		deadline := s.Since.Add(m.c.cfg.MaxLifetime)
		if p.CompleteAt.After(deadline) {
			deadline = p.CompleteAt
		}
		gauge(deadlineDesc, float64(deadline.Unix()))
	}
	for _, v := range []struct {
		what string
		n    int
	}{{"bundle", p.HoldingNext}, {"leaf", p.LeafNext}} {
		gauge(holdersDesc, float64(v.n), v.what, "yes")
		gauge(holdersDesc, float64(p.Holders-v.n), v.what, "no")
	}
	gauge(completeDesc, b2f(p.Complete))
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(m.c.tracker.Dropped()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

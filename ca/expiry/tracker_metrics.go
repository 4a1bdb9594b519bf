package expiry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	identityLabels     = []string{"trust_domain", "namespace", "service_account"}
	identityExpiryDesc = prometheus.NewDesc("meshca_identity_certificate_expiry_timestamp_seconds",
		"Expiry (Unix time) of the latest certificate this replica issued to each identity.", identityLabels, nil)
	identityIssuedDesc = prometheus.NewDesc("meshca_identity_last_issuance_timestamp_seconds",
		"When (Unix time) this replica last issued a certificate to each identity.", identityLabels, nil)
	identityRenewByDesc = prometheus.NewDesc("meshca_identity_renewal_deadline_timestamp_seconds",
		"When (Unix time) each identity counts as not renewed: its latest certificate's start plus overdueAt of "+
			"its life. Past it with no newer certificate on any replica, the identity's agent is stuck.",
		identityLabels, nil)
	identitiesByLifeDesc = prometheus.NewDesc("meshca_identities_by_remaining_lifetime",
		"Identities tracked by this replica, by the time left on their latest certificate.", []string{"remaining"}, nil)
	identitiesOverdueDesc = prometheus.NewDesc("meshca_identities_renewal_overdue",
		"Identities tracked by this replica that are past their renewal deadline (another replica may have "+
			"renewed them: alert on the per-identity deadline, aggregated with max).", nil, nil)
)

// lifeBuckets are the upper bounds of meshca_identities_by_remaining_lifetime's buckets, after "expired".
var lifeBuckets = []struct {
	name  string
	under time.Duration
}{
	{"under_1h", time.Hour}, {"under_6h", 6 * time.Hour}, {"under_24h", 24 * time.Hour},
	{"under_7d", 7 * 24 * time.Hour},
}

// trackerCollector exports a Tracker at scrape time.
type trackerCollector struct{ t *Tracker }

func (c trackerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{identityExpiryDesc, identityIssuedDesc, identityRenewByDesc,
		identitiesByLifeDesc, identitiesOverdueDesc} {
		ch <- d
	}
	c.t.dropped.Describe(ch)
}

func (c trackerCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.t.now()
	counts := map[string]int{"expired": 0, "over_7d": 0}
	for _, b := range lifeBuckets {
		counts[b.name] = 0
	}
	overdue := 0
	for _, st := range c.t.Identities() {
		id := st.Identity
		lv := []string{id.TrustDomain, id.Namespace, id.ServiceAccount}
		ch <- prometheus.MustNewConstMetric(identityExpiryDesc, prometheus.GaugeValue, unix(st.NotAfter), lv...)
		ch <- prometheus.MustNewConstMetric(identityIssuedDesc, prometheus.GaugeValue, unix(st.Issued), lv...)
		ch <- prometheus.MustNewConstMetric(identityRenewByDesc, prometheus.GaugeValue, unix(st.RenewBy), lv...)
		counts[remainingBucket(st.NotAfter.Sub(now))]++
		if !now.Before(st.RenewBy) {
			overdue++
		}
	}
	for name, n := range counts {
		ch <- prometheus.MustNewConstMetric(identitiesByLifeDesc, prometheus.GaugeValue, float64(n), name)
	}
	ch <- prometheus.MustNewConstMetric(identitiesOverdueDesc, prometheus.GaugeValue, float64(overdue))
	c.t.dropped.Collect(ch)
}

// remainingBucket names the bucket of meshca_identities_by_remaining_lifetime for the time left.
func remainingBucket(left time.Duration) string {
	if left <= 0 {
		return "expired"
	}
	for _, b := range lifeBuckets {
		if left < b.under {
			return b.name
		}
	}
	return "over_7d"
}

package crl

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Publish error targets, the values of meshca_crl_publish_errors_total's target label.
const (
	TargetBuild     = "build"     // building or signing a CRL of a CA meshca holds the key of
	TargetSource    = "source"    // a backend's own CRL, or its chain, could not be read
	TargetFile      = "file"      // a configured CRL file could not be read or parsed
	TargetCoverage  = "coverage"  // some CA of the served chains has no valid CRL
	TargetConfigMap = "configmap" // writing an istio-ca-crl ConfigMap (crl/kubepublish)
	TargetDir       = "dir"       // writing ca-crl.pem to crl.outputDir (DirOutput)
)

// Metrics are the revocation metrics. Create them once with NewMetrics and hand the same value to the
// Registry, the Publisher and crl/kubepublish. The ca label is a CAID; meshca_crl_info maps it to the CA's
// subject.
type Metrics struct {
	nextUpdate    *prometheus.GaugeVec
	thisUpdate    *prometheus.GaugeVec
	entries       *prometheus.GaugeVec
	size          *prometheus.GaugeVec
	number        *prometheus.GaugeVec
	info          *prometheus.GaugeVec
	revocations   *prometheus.CounterVec
	publishErrors *prometheus.CounterVec
	complete      prometheus.Gauge
	inventory     prometheus.Gauge
	dropped       prometheus.Counter
	renewals      *prometheus.CounterVec
}

// Results of the revocation check of a client-certificate renewal, the values of
// meshca_crl_renewal_checks_total's result label.
const (
	RenewalGood           = "good"            // every certificate of the chain is covered and not revoked
	RenewalRevoked        = "revoked"         // a certificate of the chain is revoked: refused
	RenewalUnknownRefused = "unknown_refused" // a CA of the chain has no current CRL: refused
	RenewalUnknownAllowed = "unknown_allowed" // the same, accepted under crl.renewalFailOpen
)

// NewMetrics creates the metrics and registers them on reg when it is not nil.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	ca := []string{"ca"}
	m := &Metrics{
		nextUpdate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshca_crl_next_update_timestamp_seconds",
			Help: "nextUpdate of the published CRL of each CA of the served chains (Unix seconds); past it, " +
				"proxies refuse the CRL."}, ca),
		thisUpdate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshca_crl_this_update_timestamp_seconds",
			Help: "thisUpdate of the published CRL of each CA of the served chains (Unix seconds)."}, ca),
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshca_crl_entries",
			Help: "Revoked certificates listed in the published CRL of each CA."}, ca),
		size: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshca_crl_size_bytes",
			Help: "DER size of the published CRL of each CA."}, ca),
		number: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshca_crl_number",
			Help: "CRL number of the published CRL of each CA."}, ca),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshca_crl_info",
			Help: "1 for each CA of the served chains: its subject and where its CRL comes from " +
				"(meshca, backend, file, bundle)."},
			[]string{"ca", "subject", "origin"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_revocations_total",
			Help: "Certificates revoked by this replica, by RFC 5280 reason."}, []string{"reason"}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_crl_publish_errors_total",
			Help: "Failures to build, read or publish CRLs, by target (build, source, file, coverage, configmap, " +
				"dir)."},
			[]string{"target"}),
		complete: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshca_crl_coverage_complete",
			Help: "1 when every CA of the served chains has a valid CRL (what Envoy's CRL_CHECK_ALL needs), else 0."}),
		inventory: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshca_crl_inventory_records",
			Help: "Unexpired issued certificates in the inventory used to revoke by identity."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshca_crl_inventory_dropped_total",
			Help: "Issued certificates not kept in the inventory because it or its buffer was full."}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_crl_renewal_checks_total",
			Help: "Revocation checks of client-certificate renewals by result (good, revoked, unknown_refused, " +
				"unknown_allowed)."}, []string{"result"}),
	}
	for _, r := range []string{RenewalGood, RenewalRevoked, RenewalUnknownRefused, RenewalUnknownAllowed} {
		m.renewals.WithLabelValues(r)
	}
	for _, t := range []string{TargetBuild, TargetSource, TargetFile, TargetCoverage, TargetConfigMap, TargetDir} {
		m.publishErrors.WithLabelValues(t)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.nextUpdate, m.thisUpdate, m.entries, m.size, m.number, m.info,
		m.revocations, m.publishErrors, m.complete, m.inventory, m.dropped, m.renewals} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("crl: registering metrics: %w", err)
		}
	}
	return m, nil
}

// PublishError counts a publication failure for target (one of the Target constants).
func (m *Metrics) PublishError(target string) { m.publishErrors.WithLabelValues(target).Inc() }

// RenewalCheck counts a renewal's revocation check with result (one of the Renewal constants).
func (m *Metrics) RenewalCheck(result string) { m.renewals.WithLabelValues(result).Inc() }

func (m *Metrics) setCRL(c *CRL) {
	id := string(c.ID)
	m.nextUpdate.WithLabelValues(id).Set(float64(c.List.NextUpdate.Unix()))
	m.thisUpdate.WithLabelValues(id).Set(float64(c.List.ThisUpdate.Unix()))
	m.entries.WithLabelValues(id).Set(float64(len(c.List.RevokedCertificateEntries)))
	m.size.WithLabelValues(id).Set(float64(len(c.DER)))
	if c.List.Number != nil {
		n, _ := c.List.Number.Float64()
		m.number.WithLabelValues(id).Set(n)
	}
}

func (m *Metrics) deleteCRL(id CAID) {
	for _, g := range []*prometheus.GaugeVec{m.nextUpdate, m.thisUpdate, m.entries, m.size, m.number} {
		g.DeleteLabelValues(string(id))
	}
	m.info.DeletePartialMatch(prometheus.Labels{"ca": string(id)})
}

package ca

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/csr"
)

// metrics are the issuance core's Prometheus metrics: meshca_* names, plus the istiod (citadel_server_*) names
// with the same meaning so existing Istio dashboards keep working.
type metrics struct {
	requests        *prometheus.CounterVec
	issued          *prometheus.CounterVec
	requestDuration prometheus.Histogram
	signDuration    *prometheus.HistogramVec
	ttlAdjusted     *prometheus.CounterVec
	failovers       *prometheus.CounterVec
	decisions       *prometheus.CounterVec

	csrCount, success, authnFailure, parseErr, idErr prometheus.Counter
	signErr                                          *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, i *Issuer, rules []string) (*metrics, error) {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_csr_requests_total",
			Help: "Certificate requests by result (issued, rejected, failed) and reason."},
			[]string{"result", "reason"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_certificates_issued_total",
			Help: "Certificates issued by backend and key type."}, []string{"backend", "key_type"}),
		requestDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meshca_request_duration_seconds",
			Help: "Time to handle a certificate request, authentication to response.", Buckets: buckets}),
		signDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meshca_sign_duration_seconds",
			Help: "Time a backend took to sign, by backend and result.", Buckets: buckets},
			[]string{"backend", "result"}),
		ttlAdjusted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_ttl_adjusted_total",
			Help: "Requested lifetimes changed by policy (clamped_to_max, raised_to_min) " +
				"or shortened by the backend (backend_shortened)."},
			[]string{"how"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_backend_failovers_total",
			Help: "Requests passed to the next backend because this one was unavailable."}, []string{"backend"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_policy_decisions_total",
			Help: "Policy decisions by the rule that decided (the configured rule names, or default) and " +
				"decision (allow, deny)."}, []string{"rule", "decision"}),
		csrCount: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_csr_count",
			Help: "The number of CSRs received (istiod-compatible)."}),
		success: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_success_cert_issuance_count",
			Help: "The number of certificates issuances that have succeeded (istiod-compatible)."}),
		authnFailure: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_authentication_failure_count",
			Help: "The number of authentication failures (istiod-compatible)."}),
		parseErr: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_csr_parsing_err_count",
			Help: "The number of errors occurred when parsing the CSR (istiod-compatible)."}),
		idErr: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_id_extraction_err_count",
			Help: "The number of requests whose CSR identity did not match the caller (istiod-compatible name)."}),
		signErr: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_server_csr_sign_err_count",
			Help: "The number of errors occurred when signing the CSR, by istiod's error type: CA_NOT_READY, " +
				"CERT_GEN_ERROR (istiod-compatible)."}, []string{"error"}),
	}
	for _, c := range Classes() {
		m.requests.WithLabelValues(c.Outcome, c.Reason) // present at zero from the start
	}
	for _, r := range rules {
		m.initRule(r)
	}
	for _, e := range citadelSignErrors {
		m.signErr.WithLabelValues(e)
	}
	for _, b := range i.backends { // dashboards and alerts see every series at zero before the first request
		m.failovers.WithLabelValues(b.Name)
		for _, kt := range csr.KeyTypes() {
			m.issued.WithLabelValues(b.Name, kt)
		}
	}
	for _, how := range []string{"clamped_to_max", "raised_to_min", "backend_shortened"} {
		m.ttlAdjusted.WithLabelValues(how)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.issued, m.requestDuration, m.signDuration, m.ttlAdjusted,
		m.failovers, m.decisions, m.csrCount, m.success, m.authnFailure, m.parseErr, m.idErr, m.signErr,
		&expiryCollector{i}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ca: registering metrics: %w", err)
		}
	}
	return m, nil
}

// initRule makes the decision series of rule present at zero. Rule names come from configuration, so the
// label set is bounded by it.
func (m *metrics) initRule(rule string) {
	m.decisions.WithLabelValues(rule, "allow")
	m.decisions.WithLabelValues(rule, "deny")
}

// record counts one finished request by its Class.
func (m *metrics) record(c Class, elapsed time.Duration) {
	m.csrCount.Inc()
	m.requestDuration.Observe(elapsed.Seconds())
	switch c.citadel {
	case citadelSuccess:
		m.success.Inc()
	case citadelAuthnFailure:
		m.authnFailure.Inc()
	case citadelParseErr:
		m.parseErr.Inc()
	case citadelIDErr:
		m.idErr.Inc()
	case citadelSignErr, citadelNotReady:
		m.signErr.WithLabelValues(citadelSignErrors[c.citadel]).Inc()
	}
	m.requests.WithLabelValues(c.Outcome, c.Reason).Inc()
}

var (
	caExpiryDesc = prometheus.NewDesc("meshca_ca_cert_expiration_timestamp_seconds",
		"Expiry (Unix time) of each CA certificate of each backend: its roots and its issuing chain.",
		[]string{"backend", "role", "subject", "serial"}, nil)
	rootExpiryDesc = prometheus.NewDesc(
		"citadel_server_root_cert_expiry_timestamp",
		"The unix timestamp, in seconds, when the primary backend's root certificate will expire (istiod-compatible).",
		nil,
		nil,
	)
	rootRemainingDesc = prometheus.NewDesc("citadel_server_root_cert_expiry_seconds",
		"The time remaining, in seconds, before the primary backend's root certificate expires; negative once "+
			"it has expired (istiod-compatible, Istio 1.24+).", nil, nil)
	chainRemainingDesc = prometheus.NewDesc("citadel_server_cert_chain_expiry_seconds",
		"The time remaining, in seconds, before the first certificate of the primary backend's issuing chain "+
			"expires; negative once it has expired (istiod-compatible, Istio 1.24+).", nil, nil)
	chainExpiryDesc = prometheus.NewDesc(
		"citadel_server_cert_chain_expiry_timestamp",
		"The unix timestamp, in seconds, when the first certificate of the primary backend's issuing chain "+
			"will expire (istiod-compatible).",
		nil,
		nil,
	)
)

// expiryCollector reads the backends' CA certificates at scrape time, so the gauges follow every reload.
type expiryCollector struct{ i *Issuer }

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- caExpiryDesc
	ch <- rootExpiryDesc
	ch <- chainExpiryDesc
	ch <- rootRemainingDesc
	ch <- chainRemainingDesc
}

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for n, b := range c.i.backends {
		roots, _ := b.Backend.Roots(ctx)
		seen := map[string]bool{}
		emit := func(role string, cert *x509.Certificate) {
			key := role + string(cert.Raw)
			if seen[key] {
				return
			}
			seen[key] = true
			ch <- prometheus.MustNewConstMetric(caExpiryDesc, prometheus.GaugeValue, float64(cert.NotAfter.Unix()),
				b.Name, role, cert.Subject.String(), fmt.Sprintf("%x", cert.SerialNumber))
		}
		minRoot := time.Time{}
		for _, r := range roots {
			emit("root", r)
			if minRoot.IsZero() || r.NotAfter.Before(minRoot) {
				minRoot = r.NotAfter
			}
		}
		var chain []*x509.Certificate
		if ch, ok := b.Backend.(interface {
			CAChain(context.Context) ([]*x509.Certificate, error)
		}); ok {
			chain, _ = ch.CAChain(ctx)
		}
		minChain := time.Time{}
		for _, cert := range chain {
			if isRoot(cert, roots) {
				continue
			}
			emit("intermediate", cert)
			if minChain.IsZero() || cert.NotAfter.Before(minChain) {
				minChain = cert.NotAfter
			}
		}
		if n == 0 {
			now := c.i.clock()
			if !minRoot.IsZero() {
				ch <- prometheus.MustNewConstMetric(rootExpiryDesc, prometheus.GaugeValue, float64(minRoot.Unix()))
				ch <- prometheus.MustNewConstMetric(rootRemainingDesc, prometheus.GaugeValue,
					minRoot.Sub(now).Seconds())
			}
			if !minChain.IsZero() {
				ch <- prometheus.MustNewConstMetric(chainExpiryDesc, prometheus.GaugeValue, float64(minChain.Unix()))
				ch <- prometheus.MustNewConstMetric(chainRemainingDesc, prometheus.GaugeValue,
					minChain.Sub(now).Seconds())
			}
		}
	}
}

func isRoot(c *x509.Certificate, roots []*x509.Certificate) bool {
	for _, r := range roots {
		if r.Equal(c) {
			return true
		}
	}
	return false
}

package expiry

import (
	"crypto/x509"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	servingExpiryDesc = prometheus.NewDesc("meshca_serving_certificate_expiry_timestamp_seconds",
		"Expiry (Unix time) of the TLS certificate this replica serves gRPC with.", nil, nil)
	servingNotBeforeDesc = prometheus.NewDesc("meshca_serving_certificate_not_before_timestamp_seconds",
		"notBefore (Unix time) of the TLS certificate this replica serves gRPC with; with the expiry, its lifetime.",
		nil, nil)
)

// RegisterServing registers on reg the gauges of meshca's own serving certificate, read from current at each
// scrape (nil until there is one). Together they let an alert fire when the certificate nears its end
// without having been renewed, whatever its lifetime.
func RegisterServing(reg prometheus.Registerer, current func() *x509.Certificate) error {
	if err := reg.Register(servingCollector(current)); err != nil {
		return fmt.Errorf("expiry: registering the serving certificate's metrics: %w", err)
	}
	return nil
}

type servingCollector func() *x509.Certificate

func (c servingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- servingExpiryDesc
	ch <- servingNotBeforeDesc
}

func (c servingCollector) Collect(ch chan<- prometheus.Metric) {
	cert := c()
	if cert == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(servingExpiryDesc, prometheus.GaugeValue, unix(cert.NotAfter))
	ch <- prometheus.MustNewConstMetric(servingNotBeforeDesc, prometheus.GaugeValue, unix(cert.NotBefore))
}

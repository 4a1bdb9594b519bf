package authn

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// KeysMetrics are the Prometheus metrics of remote key sets, labelled by token issuer (a configured value,
// never a caller's).
type KeysMetrics struct {
	refreshes   *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
}

// NewKeysMetrics registers the metrics on reg (nil: unregistered):
// meshca_jwks_refresh_total{issuer,result="ok|error"} and meshca_jwks_last_success_timestamp_seconds{issuer},
// from which an alert tells keys served stale for too long.
func NewKeysMetrics(reg prometheus.Registerer) (*KeysMetrics, error) {
	m := &KeysMetrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_jwks_refresh_total",
			Help: "Fetches of token issuers' key sets (JWKS), by outcome."}, []string{"issuer", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshca_jwks_last_success_timestamp_seconds",
			Help: "When each token issuer's key set was last fetched successfully."}, []string{"issuer"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.refreshes, m.lastSuccess} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("authn: registering JWKS metrics: %w", err)
			}
		}
	}
	return m, nil
}

// refreshed counts one fetch; at, for a success, is when it succeeded.
func (m *KeysMetrics) refreshed(issuer, result string, at time.Time) {
	if m == nil {
		return
	}
	m.refreshes.WithLabelValues(issuer, result).Inc()
	if !at.IsZero() {
		m.lastSuccess.WithLabelValues(issuer).Set(float64(at.UnixNano()) / 1e9)
	}
}

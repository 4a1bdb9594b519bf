package compliance

import (
	"crypto/tls"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Handshakes counts completed TLS handshakes by endpoint, version, key-exchange group and result
// (meshca_tls_handshakes_total), and logs each at debug. Labels come from crypto/tls's fixed names, so they
// stay bounded.
type Handshakes struct {
	total *prometheus.CounterVec
	log   *slog.Logger
}

// NewHandshakes registers meshca_tls_handshakes_total on reg (nil: not registered) and logs with log (nil:
// slog.Default()).
func NewHandshakes(reg prometheus.Registerer, log *slog.Logger) (*Handshakes, error) {
	h := &Handshakes{total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_tls_handshakes_total",
		Help: "TLS handshakes meshca served or made, by endpoint, TLS version, key-exchange group and result " +
			"(ok, or refused by the compliance policy)."}, []string{"endpoint", "version", "group", "result"}),
		log: log}
	if h.log == nil {
		h.log = slog.Default()
	}
	if reg != nil {
		if err := reg.Register(h.total); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			h.total = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return h, nil
}

// Instrument makes c's VerifyConnection (which Apply may have set) count and log every handshake at
// endpoint; call it after Apply. A nil h leaves c as it is.
func (h *Handshakes) Instrument(c *tls.Config, endpoint string) {
	if h == nil || c == nil {
		return
	}
	next := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		var err error
		if next != nil {
			err = next(cs)
		}
		result := "ok"
		if errors.Is(err, ErrRefused) {
			result = "refused"
		} else if err != nil {
			result = "error"
		}
		version, group := tls.VersionName(cs.Version), cs.CurveID.String()
		h.total.WithLabelValues(endpoint, version, group, result).Inc()
		h.log.Debug("TLS handshake", "endpoint", endpoint, "version", version, "group", group,
			"cipher_suite", tls.CipherSuiteName(cs.CipherSuite), "result", result)
		return err
	}
}

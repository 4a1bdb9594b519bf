package ca_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
)

// sample is catest.Sample on a registry.
func sample(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) (float64, bool) {
	t.Helper()
	return catest.Sample(t, reg, name, want)
}

// citadel_server_csr_sign_err_count carries istiod's error label: CA_NOT_READY when no backend is available,
// CERT_GEN_ERROR for other signing failures. Both series exist at zero before the first request.
func TestCitadelSignErrorLabel(t *testing.T) {
	dir, _ := catest.FileCA(t)
	tests := []struct {
		name      string
		fail      error
		wantLabel string
	}{
		{"an unavailable backend is a CA that is not ready", fmt.Errorf("dial: %w", backends.ErrUnavailable),
			"CA_NOT_READY"},
		{"a backend that refuses is a certificate generation error", fmt.Errorf("role: %w", backends.ErrRefused),
			"CERT_GEN_ERROR"},
		{"an unclassified failure is a certificate generation error", errors.New("boom"), "CERT_GEN_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			b := &faulty{Backend: catest.FileBackend(t, dir, nil), fail: tt.fail}
			i, dev := newIssuer(t, reg, ca.NamedBackend{Name: "only", Backend: b})
			for _, l := range []string{"CA_NOT_READY", "CERT_GEN_ERROR"} {
				if v, ok := sample(t, reg, "citadel_server_csr_sign_err_count", map[string]string{"error": l}); !ok ||
					v != 0 {
					t.Fatalf("before any request: error=%q is %v (present %v), want present at 0", l, v, ok)
				}
			}
			if _, err := i.Issue(context.Background(), request(t, dev)); err == nil {
				t.Fatal("issued despite the failing backend")
			}
			for _, l := range []string{"CA_NOT_READY", "CERT_GEN_ERROR"} {
				v, _ := sample(t, reg, "citadel_server_csr_sign_err_count", map[string]string{"error": l})
				if want := map[bool]float64{true: 1, false: 0}[l == tt.wantLabel]; v != want {
					t.Errorf("citadel_server_csr_sign_err_count{error=%q} = %v, want %v", l, v, want)
				}
			}
		})
	}
}

// The Istio 1.24+ citadel_server_*_expiry_seconds gauges are the time left until the matching
// *_expiry_timestamp.
func TestCitadelExpirySeconds(t *testing.T) {
	dir, _ := catest.FileCA(t)
	reg := prometheus.NewRegistry()
	newIssuer(t, reg, ca.NamedBackend{Name: "file", Backend: catest.FileBackend(t, dir, nil)})
	for _, pair := range [][2]string{
		{"citadel_server_root_cert_expiry_timestamp", "citadel_server_root_cert_expiry_seconds"},
		{"citadel_server_cert_chain_expiry_timestamp", "citadel_server_cert_chain_expiry_seconds"},
	} {
		ts, ok1 := sample(t, reg, pair[0], nil)
		left, ok2 := sample(t, reg, pair[1], nil)
		now := float64(time.Now().Unix())
		if !ok1 || !ok2 || left <= 0 || math.Abs(ts-now-left) > 5 {
			t.Errorf("%s = %v (present %v), %s = %v (present %v): want the time left until the timestamp",
				pair[0], ts, ok1, pair[1], left, ok2)
		}
	}
}

// The counters dashboards and alerts read exist at zero from the start, before any request.
func TestCountersPresentAtZero(t *testing.T) {
	dir, _ := catest.FileCA(t)
	reg := prometheus.NewRegistry()
	newIssuer(t, reg, ca.NamedBackend{Name: "file", Backend: catest.FileBackend(t, dir, nil)})
	for _, tc := range []struct {
		name   string
		labels map[string]string
	}{
		{"meshca_certificates_issued_total", map[string]string{"backend": "file", "key_type": "ECDSA-P256"}},
		{"meshca_certificates_issued_total", map[string]string{"backend": "file", "key_type": "RSA-2048"}},
		{"meshca_backend_failovers_total", map[string]string{"backend": "file"}},
		{"meshca_ttl_adjusted_total", map[string]string{"how": "clamped_to_max"}},
		{"meshca_csr_requests_total", map[string]string{"result": "issued", "reason": "ok"}},
		{"citadel_server_csr_count", nil},
		{"citadel_server_success_cert_issuance_count", nil},
	} {
		if v, ok := sample(t, reg, tc.name, tc.labels); !ok || v != 0 {
			t.Errorf("%s%v = %v (present %v), want present at 0", tc.name, tc.labels, v, ok)
		}
	}
}

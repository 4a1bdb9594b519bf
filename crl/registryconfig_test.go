package crl_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/crl"
)

func TestRegistryConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   crl.RegistryConfig
		valid bool
	}{
		{"the defaults are valid", crl.RegistryConfig{}, true},
		{"a one-minute crlLifetime is the shortest allowed", crl.RegistryConfig{CRLLifetime: time.Minute}, true},
		{"a crlLifetime under a minute is refused", crl.RegistryConfig{CRLLifetime: time.Minute - time.Second}, false},
		{"refreshAfter equal to crlLifetime is refused",
			crl.RegistryConfig{CRLLifetime: time.Hour, RefreshAfter: time.Hour}, false},
		{"refreshAfter a second under crlLifetime is valid",
			crl.RegistryConfig{CRLLifetime: time.Hour, RefreshAfter: time.Hour - time.Second}, true},
		{"a backdate of one hour is the longest allowed", crl.RegistryConfig{Backdate: time.Hour}, true},
		{"a backdate over an hour is refused", crl.RegistryConfig{Backdate: time.Hour + time.Second}, false},
		{"a negative crlLifetime is refused", crl.RegistryConfig{CRLLifetime: -time.Hour}, false},
		{"a negative refreshAfter is refused", crl.RegistryConfig{RefreshAfter: -time.Second}, false},
		{"a negative backdate is refused", crl.RegistryConfig{Backdate: -time.Second}, false},
		{"a negative flushInterval is refused", crl.RegistryConfig{FlushInterval: -time.Second}, false},
		{"a negative markRetention is refused", crl.RegistryConfig{MarkRetention: -time.Second}, false},
		{"a negative unknownExpiry is refused", crl.RegistryConfig{UnknownExpiry: -time.Second}, false},
		{"a negative maxInventory is refused", crl.RegistryConfig{MaxInventory: -1}, false},
		{"a negative maxPending is refused", crl.RegistryConfig{MaxPending: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.valid {
				t.Fatalf("Validate = %v, want valid %v", err, tc.valid)
			}
		})
	}
}

func TestRecordBuffersExactlyMaxPending(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := crl.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *crl.RegistryConfig) { c.MaxPending, c.Metrics = 2, m })
	for range 3 {
		e.issue(t, idA, time.Hour)
	}
	if n := gauge(t, reg, "meshca_crl_inventory_dropped_total", nil); n != 1 {
		t.Fatalf("%v records dropped of 3 with maxPending 2, want 1", n)
	}
	if err := e.reg.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.reg.Snapshot().Issued); n != 2 {
		t.Fatalf("%d records flushed, want the 2 buffered", n)
	}
}

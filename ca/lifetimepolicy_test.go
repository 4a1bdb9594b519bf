package ca_test

import (
	"testing"
	"time"

	"github.com/meshca/meshca/ca"
)

// The lifetime defaults (24h default and maximum, 1h minimum) widen to take in a default set outside them,
// and Validate accepts bounds that meet (min = default = max) and refuses a default outside them.
func TestLifetimeDefaultsAndBounds(t *testing.T) {
	h := time.Hour
	defaults := []struct {
		name          string
		p             ca.Policy
		def, min, max time.Duration
	}{
		{"nothing set", ca.Policy{}, 24 * h, h, 24 * h},
		{"a default below the minimum's default lowers it", ca.Policy{DefaultTTL: 30 * time.Minute},
			30 * time.Minute, 30 * time.Minute, 24 * h},
		{"a default above the maximum's default raises it", ca.Policy{DefaultTTL: 48 * h}, 48 * h, h, 48 * h},
		{"explicit bounds are kept", ca.Policy{DefaultTTL: 2 * h, MinTTL: 90 * time.Minute, MaxTTL: 3 * h},
			2 * h, 90 * time.Minute, 3 * h},
	}
	for _, tt := range defaults {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.p.WithDefaults()
			if d.DefaultTTL != tt.def || d.MinTTL != tt.min || d.MaxTTL != tt.max {
				t.Fatalf("default %s, min %s, max %s; want %s, %s, %s", d.DefaultTTL, d.MinTTL, d.MaxTTL, tt.def,
					tt.min, tt.max)
			}
			if got := tt.p.EffectiveMaxTTL(); got != tt.max {
				t.Fatalf("EffectiveMaxTTL %s, want %s", got, tt.max)
			}
		})
	}
	bounds := []struct {
		name string
		p    ca.Policy
		ok   bool
	}{
		{"minimum, default and maximum equal", ca.Policy{DefaultTTL: 2 * h, MinTTL: 2 * h, MaxTTL: 2 * h}, true},
		{"the default at the minimum", ca.Policy{DefaultTTL: h, MinTTL: h, MaxTTL: 4 * h}, true},
		{"the default at the maximum", ca.Policy{DefaultTTL: 4 * h, MinTTL: h, MaxTTL: 4 * h}, true},
		{"the default below the minimum", ca.Policy{DefaultTTL: h, MinTTL: 2 * h, MaxTTL: 4 * h}, false},
		{"the default above the maximum", ca.Policy{DefaultTTL: 5 * h, MinTTL: h, MaxTTL: 4 * h}, false},
		{"the maximum below the minimum", ca.Policy{DefaultTTL: 2 * h, MinTTL: 3 * h, MaxTTL: 2 * h}, false},
		{"a negative minimum", ca.Policy{MinTTL: -h}, false},
	}
	for _, tt := range bounds {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.TrustDomain = "cluster.local"
			if err := tt.p.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

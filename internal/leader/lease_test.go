package leader

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLeaseConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		lease LeaseConfig
		want  []string // each a part of one message, in order
	}{
		{"a namespace alone is enough", LeaseConfig{LeaseNamespace: "istio-system"}, nil},
		{"the namespace is required", LeaseConfig{}, []string{"leaseNamespace: required"}},
		{"the namespace must be a DNS label", LeaseConfig{LeaseNamespace: "Istio.System"},
			[]string{`leaseNamespace: "Istio.System"`}},
		{"the name must be a DNS subdomain", LeaseConfig{LeaseNamespace: "a", LeaseName: "b_c"},
			[]string{`leaseName: "b_c"`}},
		{"durations must not be negative", LeaseConfig{LeaseNamespace: "a", RetryPeriod: -time.Second},
			[]string{"must not be negative"}},
		{"the timings must leave room to renew", LeaseConfig{LeaseNamespace: "a", LeaseDuration: 10 * time.Second},
			[]string{"need leaseDuration (10s) > renewDeadline (10s)"}},
		{"every problem is reported", LeaseConfig{LeaseName: "B"},
			[]string{"leaseNamespace: required", `leaseName: "B"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errs []error
			if j, ok := tt.lease.Validate("pkg").(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate() = %v, want %d problems", errors.Join(errs...), len(tt.want))
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), "pkg: ") || !strings.Contains(err.Error(), tt.want[i]) {
					t.Errorf("problem %d = %q, want it to start with \"pkg: \" and say %q", i, err, tt.want[i])
				}
			}
		})
	}
}

func TestLeaseConfigDefaults(t *testing.T) {
	l := LeaseConfig{LeaseNamespace: "a", RetryPeriod: time.Second}.WithDefaults("b")
	if l.Identity == "" || l.LeaseDuration != 15*time.Second || l.RenewDeadline != 10*time.Second ||
		l.RetryPeriod != time.Second {
		t.Fatalf("WithDefaults() = %+v, want the host name, 15s, 10s and the 1s that was set", l)
	}
	if l.String() != "a/b" {
		t.Fatalf("String() = %q, want a/b", l.String())
	}
	if got := (LeaseConfig{LeaseName: "set"}).WithDefaults("b").LeaseName; got != "set" {
		t.Fatalf("WithDefaults replaced the configured name with %q", got)
	}
}

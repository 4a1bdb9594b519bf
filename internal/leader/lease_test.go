package leader

import (
	"strings"
	"testing"
	"time"
)

func TestLeaseProblems(t *testing.T) {
	tests := []struct {
		name  string
		lease Lease
		want  []string // each a part of one message, in order
	}{
		{"a namespace alone is enough", Lease{Namespace: "istio-system"}, nil},
		{"the namespace is required", Lease{}, []string{"leaseNamespace is required"}},
		{"the namespace must be a DNS label", Lease{Namespace: "Istio.System"},
			[]string{`leaseNamespace "Istio.System"`}},
		{"the name must be a DNS subdomain", Lease{Namespace: "a", Name: "b_c"}, []string{`leaseName "b_c"`}},
		{"durations must not be negative", Lease{Namespace: "a", RetryPeriod: -time.Second},
			[]string{"must not be negative"}},
		{"the timings must leave room to renew", Lease{Namespace: "a", Duration: 10 * time.Second},
			[]string{"need leaseDuration (10s) > renewDeadline (10s)"}},
		{"every problem is reported", Lease{Name: "B"},
			[]string{"leaseNamespace is required", `leaseName "B"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.lease.Problems("pkg")
			if len(errs) != len(tt.want) {
				t.Fatalf("Problems() = %v, want %d problems", errs, len(tt.want))
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), "pkg: ") || !strings.Contains(err.Error(), tt.want[i]) {
					t.Errorf("problem %d = %q, want it to start with \"pkg: \" and say %q", i, err, tt.want[i])
				}
			}
		})
	}
}

func TestLeaseDefaults(t *testing.T) {
	l := Lease{Namespace: "a", Name: "b", RetryPeriod: time.Second}.WithDefaults()
	if l.Identity == "" || l.Duration != 15*time.Second || l.RenewDeadline != 10*time.Second ||
		l.RetryPeriod != time.Second {
		t.Fatalf("WithDefaults() = %+v, want the host name, 15s, 10s and the 1s that was set", l)
	}
	if l.String() != "a/b" {
		t.Fatalf("String() = %q, want a/b", l.String())
	}
}

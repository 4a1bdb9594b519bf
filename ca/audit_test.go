package ca_test

import (
	"strings"
	"testing"

	"github.com/meshca/meshca/ca"
)

func TestBounded(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"a short printable string is kept", "Kubernetes", "Kubernetes"},
		{"control characters are escaped", "a\nb\x1b[31m", `a\nb\x1b[31m`},
		{"non-ASCII is escaped", "clüster", `cl\u00fcster`},
		{"a long string is cut and marked", strings.Repeat("x", 10000), strings.Repeat("x", 64) + "..."},
		{"a string of exactly 64 bytes is kept whole", strings.Repeat("y", 64), strings.Repeat("y", 64)},
		{"a string of 65 bytes is cut", strings.Repeat("z", 65), strings.Repeat("z", 64) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ca.Bounded(tt.in); got != tt.want {
				t.Errorf("Bounded = %q, want %q", got, tt.want)
			}
		})
	}
}

package csr

import (
	"strings"
	"testing"
)

// TestBoundedKeepsUpTo64Bytes: a caller-supplied string of up to 64 bytes reaches a message whole; a longer
// one is cut to 64 bytes and marked.
func TestBoundedKeepsUpTo64Bytes(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"64 bytes are kept whole", strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{"65 bytes are cut to 64 and marked", strings.Repeat("b", 65), strings.Repeat("b", 64) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bounded(tt.in); got != tt.want {
				t.Fatalf("bounded: %q, want %q", got, tt.want)
			}
		})
	}
}

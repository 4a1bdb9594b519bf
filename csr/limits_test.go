package csr_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshca/meshca/csr"
)

// TestIdentityLimits pins each length limit of a SPIFFE ID's parts at its edge: the longest valid part is
// accepted and one byte more is refused (Kubernetes: a namespace is a DNS-1123 label of at most 63 bytes, a
// service account a DNS-1123 subdomain of at most 253; SPIFFE: a trust domain of at most 255).
func TestIdentityLimits(t *testing.T) {
	label := func(n int) string { return strings.Repeat("a", n) }
	// subdomain returns a DNS-1123 subdomain of exactly n bytes made of labels of at most 63 bytes.
	subdomain := func(n int) string {
		var parts []string
		for n > 0 {
			l := min(n, 63)
			if n > 63 && n-63 < 2 { // leave room for a dot and at least one byte
				l = n - 2
			}
			parts = append(parts, label(l))
			n -= l + 1
		}
		return strings.Join(parts, ".")
	}
	if len(subdomain(253)) != 253 || len(subdomain(254)) != 254 {
		t.Fatal("test bug: subdomain builds the wrong length")
	}
	tests := []struct {
		name string
		id   csr.Identity
		ok   bool
	}{
		{"a 63-byte namespace", csr.Identity{"td", label(63), "sa"}, true},
		{"a 64-byte namespace", csr.Identity{"td", label(64), "sa"}, false},
		{"a namespace with a dot", csr.Identity{"td", "a.b", "sa"}, false},
		{"a namespace ending in a dash", csr.Identity{"td", "ab-", "sa"}, false},
		{"a namespace with an inner dash", csr.Identity{"td", "a-b", "sa"}, true},
		{"a one-byte namespace", csr.Identity{"td", "a", "sa"}, true},
		{"an empty namespace", csr.Identity{"td", "", "sa"}, false},
		{"a 253-byte service account", csr.Identity{"td", "ns", subdomain(253)}, true},
		{"a 254-byte service account", csr.Identity{"td", "ns", subdomain(254)}, false},
		{"a service account with a 63-byte label", csr.Identity{"td", "ns", label(63) + ".b"}, true},
		{"a service account with a 64-byte label", csr.Identity{"td", "ns", label(64) + ".b"}, false},
		{"a service account with an empty label", csr.Identity{"td", "ns", "a..b"}, false},
		{"an empty service account", csr.Identity{"td", "ns", ""}, false},
		{"a 255-byte trust domain", csr.Identity{label(255), "ns", "sa"}, true},
		{"a 256-byte trust domain", csr.Identity{label(256), "ns", "sa"}, false},
		{"a trust domain with an underscore", csr.Identity{"a_b.c-d", "ns", "sa"}, true},
		{"an empty trust domain", csr.Identity{"", "ns", "sa"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.id.Validate()
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, csr.ErrInvalidID)) {
				t.Fatalf("Validate = %v, want ok=%v (or ErrInvalidID)", err, tt.ok)
			}
			got, err := csr.ParseID(tt.id.String())
			if tt.ok != (err == nil) || (tt.ok && got != tt.id) {
				t.Fatalf("ParseID(String()) = %+v, %v; want ok=%v", got, err, tt.ok)
			}
		})
	}
}

package csr_test

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meshca/meshca/csr"
)

// FuzzNamesAgreeWithKubernetes: csr checks namespaces and service accounts with its own few lines rather than
// k8s.io/apimachinery's validation package, which would bring 15 k8s.io packages (klog among them) into the
// issuance core. This keeps the two in agreement: a namespace is a DNS-1123 label and a service account a
// DNS-1123 subdomain, as Kubernetes decides, with one known difference: csr also limits each dot-separated
// part of a service-account name to 63 bytes (RFC 1123 labels), which apimachinery's subdomain check does not.
func FuzzNamesAgreeWithKubernetes(f *testing.F) {
	for _, s := range []string{"default", "istio-system", "a.b", "-a", "a-", "A", "a_b", "", "x.y.z-1",
		"0123456789012345678901234567890123456789012345678901234567890123", "a..b", ".a", "a."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nsErr := csr.Identity{TrustDomain: "td", Namespace: s, ServiceAccount: "sa"}.Validate()
		if got, want := nsErr == nil, len(validation.IsDNS1123Label(s)) == 0; got != want {
			t.Fatalf("namespace %q: accepted=%v, Kubernetes says %v (%v)", s, got, want, nsErr)
		}
		saErr := csr.Identity{TrustDomain: "td", Namespace: "ns", ServiceAccount: s}.Validate()
		want := len(validation.IsDNS1123Subdomain(s)) == 0
		for part := range strings.SplitSeq(s, ".") {
			want = want && len(part) <= validation.DNS1123LabelMaxLength
		}
		if got := saErr == nil; got != want {
			t.Fatalf("service account %q: accepted=%v, Kubernetes says %v (%v)", s, got, want, saErr)
		}
	})
}

func TestValidateTrustDomain(t *testing.T) {
	tests := []struct {
		name string
		td   string
		ok   bool
	}{
		{"a DNS name is a trust domain", "cluster.local", true},
		{"underscores are allowed", "my_mesh", true},
		{"capitals are refused", "Cluster.local", false},
		{"a whole SPIFFE ID is not a trust domain name", "spiffe://cluster.local", false},
		{"a port is refused", "cluster.local:443", false},
		{"a path is refused", "cluster.local/ns", false},
		{"empty is refused", "", false},
		{"more than 255 bytes is refused", strings.Repeat("a", 256), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := csr.ValidateTrustDomain(tt.td)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, csr.ErrInvalidID)) {
				t.Fatalf("ValidateTrustDomain(%q) = %v, want ok=%v or ErrInvalidID", tt.td, err, tt.ok)
			}
		})
	}
}

func TestMesh(t *testing.T) {
	m := csr.Mesh{TrustDomain: "cluster.local", Aliases: []string{"old.local"}}
	tests := []struct {
		name string
		in   csr.Identity
		want csr.Identity
		ok   bool
	}{
		{"an identity of the mesh stays as it is", m.Of("a", "b"), m.Of("a", "b"), true},
		{"an alias stands for the same workload in the mesh's trust domain",
			csr.Identity{TrustDomain: "old.local", Namespace: "a", ServiceAccount: "b"}, m.Of("a", "b"), true},
		{"another trust domain is not the mesh's",
			csr.Identity{TrustDomain: "other.local", Namespace: "a", ServiceAccount: "b"}, csr.Identity{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := m.Canonical(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("Canonical(%v) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
	if _, err := m.Identity("Bad_NS", "sa"); !errors.Is(err, csr.ErrInvalidID) {
		t.Fatalf("Identity with a malformed namespace: %v, want ErrInvalidID", err)
	}
	if id, err := m.Identity("ns", "sa"); err != nil || id.String() != "spiffe://cluster.local/ns/ns/sa/sa" {
		t.Fatalf("Identity(ns, sa) = %v, %v", id, err)
	}
}

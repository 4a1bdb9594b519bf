package csr_test

import (
	"errors"
	"net/url"
	"testing"

	"github.com/meshca/meshca/csr"
)

// TestParseURI: a certificate's URI SAN is an identity only when it is a plain SPIFFE ID; every URL part a
// SPIFFE ID may not have is refused, and Identity.URI gives back the URL it came from.
func TestParseURI(t *testing.T) {
	want := csr.Identity{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "sleep"}
	plain := func(mod func(*url.URL)) *url.URL {
		u := want.URI()
		if mod != nil {
			mod(u)
		}
		return u
	}
	tests := []struct {
		name string
		u    *url.URL
		ok   bool
	}{
		{"a plain SPIFFE ID is an identity", plain(nil), true},
		{"no URI is refused", nil, false},
		{"an opaque URI is refused", &url.URL{Scheme: "spiffe", Opaque: "cluster.local/ns/default/sa/sleep"}, false},
		{"user info is refused", plain(func(u *url.URL) { u.User = url.User("admin") }), false},
		{"a query is refused", plain(func(u *url.URL) { u.RawQuery = "a=b" }), false},
		{"an empty query is refused", plain(func(u *url.URL) { u.ForceQuery = true }), false},
		{"a fragment is refused", plain(func(u *url.URL) { u.Fragment = "x" }), false},
		{"an escaped path is refused", plain(func(u *url.URL) { u.RawPath = "/ns/default/sa/sle%65p" }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := csr.ParseURI(tt.u)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, csr.ErrInvalidID)) || (tt.ok && got != want) {
				t.Fatalf("ParseURI(%v) = %+v, %v; want ok=%v (or ErrInvalidID)", tt.u, got, err, tt.ok)
			}
		})
	}
	if s := want.URI().String(); s != want.String() {
		t.Fatalf("URI() = %s, want %s", s, want.String())
	}
}

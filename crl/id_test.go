package crl_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
)

// TestCAIDs: IDOf names a CA by its subject key identifier, or by the SHA-256 of the certificate when it has
// none; IssuerOf names a leaf's issuer the same way; Valid accepts exactly those forms.
func TestCAIDs(t *testing.T) {
	p := crltest.New(t, t.Name())
	if got, want := crl.IDOf(p.Inter), crl.CAID("ski:"+hex.EncodeToString(p.Inter.SubjectKeyId)); got != want {
		t.Errorf("IDOf(intermediate) = %s, want %s", got, want)
	}
	noSKI, err := x509.ParseCertificate(withoutExtension(t, p.Root.Raw, 3, oidSubjectKeyID, p.RootKey))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(noSKI.Raw)
	if got, want := crl.IDOf(noSKI), crl.CAID("sha256:"+hex.EncodeToString(sum[:])); got != want || !got.Valid() {
		t.Errorf("IDOf(a CA without a subject key identifier) = %s, want %s, valid", got, want)
	}
	if got := crl.IssuerOf(p.Leaf(t, idA, time.Hour)); got != crl.IDOf(p.Inter) {
		t.Errorf("IssuerOf(leaf) = %s, want the intermediate's %s", got, crl.IDOf(p.Inter))
	}
	if got := crl.IssuerOf(noSKI); got != "" {
		t.Errorf("IssuerOf(a certificate without an authority key identifier) = %q, want empty", got)
	}
	hex64 := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		name string
		id   string
		want bool
	}{
		{"a one-byte key identifier is valid", "ski:0f", true},
		{"a 64-byte key identifier is valid", "ski:" + hex64 + hex64, true},
		{"a 65-byte key identifier is refused", "ski:" + hex64 + hex64 + "00", false},
		{"an empty key identifier is refused", "ski:", false},
		{"an odd number of hex digits is refused", "ski:0f0", false},
		{"upper-case hex is refused", "ski:0F", false},
		{"each edge of the hex alphabet is valid", "ski:09af", true},
		{"a letter past f is refused", "ski:0g", false},
		{"a SHA-256 of 32 bytes is valid", "sha256:" + hex64, true},
		{"a SHA-256 one hex digit short is refused", "sha256:" + hex64[1:], false},
		{"a SHA-256 one byte long is refused", "sha256:" + hex64 + "00", false},
		{"another prefix is refused", "sha1:" + hex64[:40], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := crl.CAID(tc.id).Valid(); got != tc.want {
				t.Fatalf("Valid(%q) = %t, want %t", tc.id, got, tc.want)
			}
		})
	}
}

func TestParseReason(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want crl.Reason
		err  error
	}{
		{"the empty string is unspecified", "", crl.Unspecified, nil},
		{"a name in RFC 5280's case", "keyCompromise", crl.KeyCompromise, nil},
		{"a name in any case", "AACOMPROMISE", crl.AACompromise, nil},
		{"a number", "9", crl.PrivilegeWithdrawn, nil},
		{"number 0", "0", crl.Unspecified, nil},
		{"unused code 7 is refused", "7", 0, crl.ErrInvalidReason},
		{"removeFromCRL is refused", "removeFromCRL", 0, crl.ErrInvalidReason},
		{"a number past the codes is refused", "11", 0, crl.ErrInvalidReason},
		{"an unknown name is refused", "stolen", 0, crl.ErrInvalidReason},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := crl.ParseReason(tc.in)
			if got != tc.want || !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("ParseReason(%q) = %v, %v; want %v, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
	if s := crl.Reason(7).String(); s != "7" {
		t.Errorf("an unnamed code prints as %q, want its number", s)
	}
}

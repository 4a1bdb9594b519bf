package backends

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

const testCDP = "http://meshca.example:15014/crl"

// cdpExtension encodes a cRLDistributionPoints extension of one distribution point: a fullName of names,
// followed by the raw fields extra (reasons, cRLIssuer).
func cdpExtension(tb testing.TB, critical bool, names []asn1.RawValue, extra ...asn1.RawValue) pkix.Extension {
	tb.Helper()
	var full []byte
	for _, n := range names {
		b, err := asn1.Marshal(n)
		if err != nil {
			tb.Fatal(err)
		}
		full = append(full, b...)
	}
	fullName := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagFullName, IsCompound: true, Bytes: full}
	fn, err := asn1.Marshal(fullName)
	if err != nil {
		tb.Fatal(err)
	}
	dpName, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagDistributionPoint,
		IsCompound: true, Bytes: fn})
	if err != nil {
		tb.Fatal(err)
	}
	fields := dpName
	for _, e := range extra {
		b, err := asn1.Marshal(e)
		if err != nil {
			tb.Fatal(err)
		}
		fields = append(fields, b...)
	}
	dp, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true,
		Bytes: fields})
	if err != nil {
		tb.Fatal(err)
	}
	der, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true,
		Bytes: dp})
	if err != nil {
		tb.Fatal(err)
	}
	return pkix.Extension{Id: oidCRLDistribution, Critical: critical, Value: der}
}

// TestCheckLeafRefusesOddDistributionPoints: whatever the backend, a cRLDistributionPoints extension must be
// the plain form; each case is refused by the CRL distribution points rule and by no other.
func TestCheckLeafRefusesOddDistributionPoints(t *testing.T) {
	crlIssuer := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true,
		Bytes: mustMarshal(t, directoryName(t, pkix.Name{CommonName: "another CA"}))}
	reasons := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte{0x07, 0x80}}
	dns := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagDNSName, Bytes: []byte("crl.example")}
	tests := []struct {
		name string
		ext  func(t *testing.T) pkix.Extension
	}{
		{"a critical extension", func(t *testing.T) pkix.Extension {
			return cdpExtension(t, true, []asn1.RawValue{uriName(testCDP)})
		}},
		{"an indirect CRL named by a cRLIssuer", func(t *testing.T) pkix.Extension {
			return cdpExtension(t, false, []asn1.RawValue{uriName(testCDP)}, crlIssuer)
		}},
		{"a distribution point for some reasons only", func(t *testing.T) pkix.Extension {
			return cdpExtension(t, false, []asn1.RawValue{uriName(testCDP)}, reasons)
		}},
		{"a DNS name instead of a URI", func(t *testing.T) pkix.Extension {
			return cdpExtension(t, false, []asn1.RawValue{dns})
		}},
		{"a file URL", func(t *testing.T) pkix.Extension {
			return cdpExtension(t, false, []asn1.RawValue{uriName("file:///etc/passwd")})
		}},
		{"no name at all", func(t *testing.T) pkix.Extension {
			return cdpExtension(t, false, nil)
		}},
		{"a URI and a DNS name", func(t *testing.T) pkix.Extension {
			return cdpExtension(t, false, []asn1.RawValue{uriName(testCDP), dns})
		}},
		{"a URI and an IP address", func(t *testing.T) pkix.Extension {
			return cdpExtension(t, false, []asn1.RawValue{uriName(testCDP),
				{Class: asn1.ClassContextSpecific, Tag: tagIPAddress, Bytes: []byte{10, 0, 0, 1}}})
		}},
	}
	ca := newTestCA(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := workloadRequest(t, ecKey(t), testID)
			tmpl := honestTemplate(req)
			tmpl.ExtraExtensions = []pkix.Extension{tt.ext(t)}
			chain := ca.issue(t, tmpl, req.PublicKey)
			if err := CheckLeaf(req, chain); !errors.Is(err, ErrBadChain) {
				t.Fatalf("CheckLeaf = %v, want ErrBadChain", err)
			}
			without := slices.DeleteFunc(slices.Clone(leafRules), func(r leafRule) bool {
				return r.name == "CRL distribution points"
			})
			if err := checkLeaf(without, req, chain, cdpRule{}); err != nil {
				t.Fatalf("without the CDP rule the leaf is still refused: %v", err)
			}
		})
	}
}

// cdpBackend is a Backend that says which distribution points its leaves carry; it signs nothing.
type cdpBackend struct{ urls []string }

func (cdpBackend) Sign(context.Context, *SignRequest) (*SignResponse, error) { return nil, ErrRefused }
func (cdpBackend) Roots(context.Context) ([]*x509.Certificate, error)        { return nil, nil }
func (b cdpBackend) CRLDistributionPoints(*SignRequest) []string             { return b.urls }

// plainBackend is a Backend that does not say which distribution points its leaves carry.
type plainBackend struct{}

func (plainBackend) Sign(context.Context, *SignRequest) (*SignResponse, error) {
	return nil, ErrRefused
}
func (plainBackend) Roots(context.Context) ([]*x509.Certificate, error) { return nil, nil }

func TestCheckLeafFromHoldsADistributionPointerToItsURLs(t *testing.T) {
	two := []string{testCDP, "ldap://ldap.example/cn=meshca"}
	tests := []struct {
		name    string
		backend Backend
		leaf    []string // the leaf's distribution points
		ok      bool
	}{
		{"the configured distribution point", cdpBackend{[]string{testCDP}}, []string{testCDP}, true},
		{"two configured points in another order", cdpBackend{two}, []string{two[1], two[0]}, true},
		{"no point configured and none in the leaf", cdpBackend{}, nil, true},
		{"another URL than the configured one", cdpBackend{[]string{testCDP}},
			[]string{"http://attacker.example/crl"}, false},
		{"a second URL beside the configured one", cdpBackend{[]string{testCDP}}, two, false},
		{"no extension though one is configured", cdpBackend{[]string{testCDP}}, nil, false},
		{"an extension though none is configured", cdpBackend{}, []string{testCDP}, false},
		{"any plain URL from a backend that does not say", plainBackend{}, []string{"https://vault.example/crl"},
			true},
	}
	ca := newTestCA(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := workloadRequest(t, ecKey(t), testID)
			tmpl := honestTemplate(req)
			tmpl.CRLDistributionPoints = tt.leaf
			err := CheckLeafFrom(tt.backend, req, ca.issue(t, tmpl, req.PublicKey))
			if tt.ok && err != nil {
				t.Fatalf("CheckLeafFrom: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrBadChain) {
				t.Fatalf("CheckLeafFrom = %v, want ErrBadChain", err)
			}
		})
	}
}

func TestValidateDistributionPoints(t *testing.T) {
	long := "http://crl.example/" + strings.Repeat("a", maxDistributionPointURL)
	for _, tt := range []struct {
		name string
		urls []string
		ok   bool
	}{
		{"an http URL of the side port", []string{testCDP}, true},
		{"http and ldap", []string{testCDP, "ldap://ldap.example/cn=crl"}, true},
		{"an https URL, whose certificate the CRL itself would have to cover", []string{"https://c.example/crl"},
			false},
		{"a relative URL", []string{"/crl"}, false},
		{"user information", []string{"http://u:p@c.example/crl"}, false},
		{"a URL listed twice", []string{testCDP, testCDP}, false},
		{"too many URLs", slices.Repeat([]string{testCDP}, MaxDistributionPoints+1), false},
		{"a URL past the length bound", []string{long}, false},
		{"as many distinct URLs as allowed", distinctURLs(MaxDistributionPoints), true},
		{"one distinct URL too many", distinctURLs(MaxDistributionPoints + 1), false},
		{"a URL of the length bound", []string{long[:maxDistributionPointURL]}, true},
		{"a URL one byte past the length bound", []string{long[:maxDistributionPointURL+1]}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateDistributionPoints(tt.urls); (err == nil) != tt.ok {
				t.Fatalf("ValidateDistributionPoints = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// FuzzParseDistributionPoints: any bytes give at least one URL or an error, never a panic.
func FuzzParseDistributionPoints(f *testing.F) {
	f.Add(cdpExtension(f, false, []asn1.RawValue{uriName(testCDP)}).Value)
	f.Add(cdpExtension(f, false, []asn1.RawValue{uriName(testCDP)},
		asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte{0x07, 0x80}}).Value)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		urls, err := parseDistributionPoints(der)
		if err == nil && len(urls) == 0 {
			t.Fatal("no error and no URL")
		}
	})
}

func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// distinctURLs returns n different http distribution points.
func distinctURLs(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("http://crl%d.example/crl", i))
	}
	return out
}

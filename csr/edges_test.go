package csr_test

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
)

// TestLargestRSAKeyIsAccepted: the RSA size limit is inclusive: an RSA-8192 CSR (made by OpenSSL, see
// testdata/README.md) parses.
func TestLargestRSAKeyIsAccepted(t *testing.T) {
	b, err := os.ReadFile("testdata/openssl-rsa-8192.pem")
	if err != nil {
		t.Fatal(err)
	}
	r, err := csr.Parse(b)
	if err != nil || r.KeyType != "RSA-other" {
		t.Fatalf("Parse(RSA-8192) = %+v, %v; want it parsed as RSA-other", r, err)
	}
}

// TestKeyUsageBitsPastTheNamedOnesAreRefused: keyUsage bits after decipherOnly (8), which RFC 5280 does not
// name, are refused like any bit a workload certificate does not have.
func TestKeyUsageBitsPastTheNamedOnesAreRefused(t *testing.T) {
	for _, bit := range []int{9, 15} {
		r, err := csr.Parse(withSPIFFE(t, keyUsage(t, kuDigitalSignature, bit)))
		if !errors.Is(err, csr.ErrUnsupportedRequest) || r != nil {
			t.Fatalf("keyUsage bit %d: %+v, %v; want ErrUnsupportedRequest", bit, r, err)
		}
	}
}

// TestSignatureRefusalNamesTheAlgorithm: a refused signature algorithm is named when crypto/x509 knows it
// (so the caller knows what to change), and called unknown when it does not, rather than printed as its number.
func TestSignatureRefusalNamesTheAlgorithm(t *testing.T) {
	spiffe := []pkix.Extension{san(t, true, uriName(sleepID))}
	sha1 := algSHA1WithRSA
	unknown := algo(0, oidPrivate...)
	unknown.garbage = true
	tests := []struct {
		name, mention string
		in            []byte
	}{
		{"a SHA-1 RSA signature is named", "SHA1-RSA",
			rawCSR{key: catest.RSAKey(t, 2048), exts: spiffe, alg: &sha1}.build(t)},
		{"an algorithm crypto/x509 does not know is called unknown", "does not know",
			rawCSR{exts: spiffe, alg: &unknown}.build(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := csr.Parse(tt.in)
			if !errors.Is(err, csr.ErrKeyPolicy) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("Parse: %v; want ErrKeyPolicy mentioning %q", err, tt.mention)
			}
		})
	}
}

// TestExtensionRefusalNamesTheExtension: a refused extension request is named, by name when it is a known one
// and by OID otherwise, and said to be critical when it is.
func TestExtensionRefusalNamesTheExtension(t *testing.T) {
	oidAIA := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	tests := []struct {
		name     string
		ext      pkix.Extension
		mentions []string
		not      string
	}{
		{"a known extension is named", ext(t, oidAIA, false, []byte{0x30, 0}),
			[]string{"extension authorityInfoAccess (1.3.6.1.5.5.7.1.1)"}, "critical"},
		{"an unknown critical extension is shown by OID", ext(t, oidPrivate, true, []byte{5, 0}),
			[]string{"critical extension 1.3.6.1.4.1.99999.1"}, "99999.1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := csr.Parse(withSPIFFE(t, tt.ext))
			if !errors.Is(err, csr.ErrUnsupportedRequest) {
				t.Fatalf("Parse: %v, want ErrUnsupportedRequest", err)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("%q does not mention %q", err, m)
				}
			}
			if strings.Contains(err.Error(), tt.not) {
				t.Errorf("%q mentions %q", err, tt.not)
			}
		})
	}
}

// TestNamesTakeTheEdgesOfTheirAlphabet: the first and last letter and digit are allowed in namespaces and
// service-account names; the characters just outside them are not.
func TestNamesTakeTheEdgesOfTheirAlphabet(t *testing.T) {
	tests := []struct {
		name string
		id   csr.Identity
		ok   bool
	}{
		{"a, z, 0 and 9 are allowed", csr.Identity{"td", "a09z", "z90a.0-9"}, true},
		{"the characters next to them are not", csr.Identity{"td", "a`{/:", "sa"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.id.Validate(); (err == nil) != tt.ok || (err != nil && !errors.Is(err, csr.ErrInvalidID)) {
				t.Fatalf("Validate(%+v) = %v, want ok=%v", tt.id, err, tt.ok)
			}
		})
	}
}

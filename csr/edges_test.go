package csr_test

import (
	"errors"
	"os"
	"testing"

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

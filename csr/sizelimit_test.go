package csr_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/meshca/meshca/csr"
)

// The size limit is inclusive: a CSR of exactly MaxPEMSize bytes (padded with the trailing whitespace Parse
// allows) parses, and one byte more is refused before any parsing.
func TestSizeLimitIsInclusive(t *testing.T) {
	good := rawCSR{}.build(t)
	if len(good) >= csr.MaxPEMSize {
		t.Fatalf("test CSR is %d bytes, not under the %d-byte limit", len(good), csr.MaxPEMSize)
	}
	atLimit := append(bytes.Clone(good), bytes.Repeat([]byte("\n"), csr.MaxPEMSize-len(good))...)
	if _, err := csr.Parse(atLimit); err != nil {
		t.Errorf("a CSR of exactly %d bytes: %v, want it parsed", len(atLimit), err)
	}
	over := append(atLimit, '\n')
	if _, err := csr.Parse(over); !errors.Is(err, csr.ErrInvalidCSR) {
		t.Errorf("a CSR of %d bytes: %v, want ErrInvalidCSR", len(over), err)
	}
}

package csr_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/csr/composite"
)

// TestCompositeRefusalNamesItsSwitch: a composite CSR sent to a CA with composite keys off is refused by key
// policy with a message that says so and names the setting that turns them on, not as an unknown key.
func TestCompositeRefusalNamesItsSwitch(t *testing.T) {
	good := compositeCSR(t, composite.MLDSA65ECDSAP256SHA512())
	for _, opts := range []csr.Options{{}, {MLDSA: true}} {
		r, err := csr.ParseWith(good, opts)
		if !errors.Is(err, csr.ErrKeyPolicy) || r != nil {
			t.Fatalf("ParseWith(%+v) = %+v, %v; want ErrKeyPolicy", opts, r, err)
		}
		if !strings.Contains(err.Error(), "issuance.experimentalComposite") {
			t.Fatalf("ParseWith(%+v): %q does not name issuance.experimentalComposite", opts, err)
		}
	}
}

package crl_test

import (
	"crypto/x509"
	"encoding/asn1"
	"slices"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
)

var oidCRLNumber = asn1.ObjectIdentifier{2, 5, 29, 20}

// TestCheckChoosesTheNewestCRL: of several valid CRLs of one CA, the one with the highest CRL number is chosen,
// a numbered one over one without a number (RFC 5280 §5.2.3 makes the number mandatory; other tools may leave
// it out), and the latest thisUpdate between equals, whatever the order they come in.
func TestCheckChoosesTheNewestCRL(t *testing.T) {
	p := crltest.New(t, t.Name())
	now := p.Now
	day := 24 * time.Hour
	rootCRL := func(number int64, age time.Duration) []byte {
		return crltest.CRL(t, p.Root, p.RootKey, number, now.Add(-age), now.Add(day))
	}
	unnumbered := func(age time.Duration) []byte {
		return withoutExtension(t, rootCRL(1, age), 0, oidCRLNumber, p.RootKey)
	}
	interCRL := crltest.CRL(t, p.Inter, p.InterKey, 1, now.Add(-time.Minute), now.Add(day))
	for _, tc := range []struct {
		name string
		crls [][]byte // the root's CRLs, after the intermediate's
		want int      // the index among them of the one chosen
	}{
		{"the highest number wins when it comes first", [][]byte{rootCRL(3, time.Hour), rootCRL(2, time.Hour)}, 0},
		{"the highest number wins when it comes last", [][]byte{rootCRL(2, time.Hour), rootCRL(3, time.Hour)}, 1},
		{"the highest number wins over a later thisUpdate",
			[][]byte{rootCRL(3, time.Hour), rootCRL(2, time.Minute)}, 0},
		{"with equal numbers the later thisUpdate wins",
			[][]byte{rootCRL(2, time.Hour), rootCRL(2, time.Minute)}, 1},
		{"a numbered CRL wins over one without a number that comes first",
			[][]byte{unnumbered(time.Minute), rootCRL(2, time.Hour)}, 1},
		{"a numbered CRL wins over one without a number that comes last",
			[][]byte{rootCRL(2, time.Hour), unnumbered(time.Minute)}, 0},
		{"without numbers the later thisUpdate wins when it comes last",
			[][]byte{unnumbered(time.Hour), unnumbered(time.Minute)}, 1},
		{"without numbers the later thisUpdate wins when it comes first",
			[][]byte{unnumbered(time.Minute), unnumbered(time.Hour)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// the intermediate's CRL first, then last: the root's are then at the start of the list
			for _, offset := range []int{1, 0} {
				var lists []*x509.RevocationList
				for _, der := range tc.crls {
					lists = append(lists, parseList(t, der))
				}
				lists = slices.Insert(lists, len(lists)*(1-offset), parseList(t, interCRL))
				cov, err := crl.Check(crl.CAs(p.Chain()), lists, now)
				if err != nil || len(cov) != 2 {
					t.Fatalf("Check = %d coverages, %v", len(cov), err)
				}
				if cov[1].Index != offset+tc.want {
					t.Fatalf("the root's CRL chosen is %d, want %d (the intermediate's CRL at %d)",
						cov[1].Index-offset, tc.want, len(lists)*(1-offset))
				}
			}
		})
	}
}

func parseList(t *testing.T, der []byte) *x509.RevocationList {
	t.Helper()
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

package crl_test

import (
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
)

func TestCheckFindsACRLForEveryCA(t *testing.T) {
	p := crltest.New(t, "check")
	now := p.Now
	other := crltest.New(t, "check") // same names, other keys
	parse := func(der []byte) *x509.RevocationList {
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	day := 24 * time.Hour
	interCRL := parse(crltest.CRL(t, p.Inter, p.InterKey, 5, now.Add(-time.Minute), now.Add(day)))
	rootCRL := parse(p.RootCRL(t, 2, day))
	for _, tc := range []struct {
		name  string
		crls  []*x509.RevocationList
		want  []error // per CA: intermediate, root
		index []int
	}{
		{"a CRL for each CA covers the chain", []*x509.RevocationList{rootCRL, interCRL},
			[]error{nil, nil}, []int{1, 0}},
		{"a missing root CRL is reported", []*x509.RevocationList{interCRL},
			[]error{nil, crl.ErrMissingCRL}, []int{0, -1}},
		{"a CRL under the root's name signed by another key does not count",
			[]*x509.RevocationList{interCRL, parse(other.RootCRL(t, 9, day))},
			[]error{nil, crl.ErrMissingCRL}, []int{0, -1}},
		{"a CRL past its nextUpdate is stale", []*x509.RevocationList{interCRL,
			parse(crltest.CRL(t, p.Root, p.RootKey, 1, now.Add(-2*day), now.Add(-time.Second)))},
			[]error{nil, crl.ErrStaleCRL}, []int{0, 1}},
		{"a CRL from the future is not yet valid", []*x509.RevocationList{interCRL,
			parse(crltest.CRL(t, p.Root, p.RootKey, 1, now.Add(time.Hour), now.Add(day)))},
			[]error{nil, crl.ErrCRLNotYetValid}, []int{0, 1}},
		{"a valid CRL wins over a stale one with a higher number", []*x509.RevocationList{interCRL, rootCRL,
			parse(crltest.CRL(t, p.Root, p.RootKey, 99, now.Add(-2*day), now.Add(-time.Second)))},
			[]error{nil, nil}, []int{0, 1}},
		{"the highest CRL number wins", []*x509.RevocationList{interCRL, rootCRL, parse(p.RootCRL(t, 3, day))},
			[]error{nil, nil}, []int{0, 2}},
		{"an intermediate revoked by the root is reported", []*x509.RevocationList{interCRL,
			parse(p.RootCRL(t, 4, day, p.Inter.SerialNumber))},
			[]error{crl.ErrCARevoked, nil}, []int{0, 1}},
		{"a revoked serial of another CA does not revoke the intermediate", []*x509.RevocationList{interCRL,
			parse(p.RootCRL(t, 4, day, big.NewInt(1)))},
			[]error{nil, nil}, []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cov, err := crl.Check(crl.CAs(p.Chain()), tc.crls, now)
			if len(cov) != 2 {
				t.Fatalf("%d coverages for 2 CAs", len(cov))
			}
			var wantAny bool
			for i, c := range cov {
				if !errors.Is(c.Err, tc.want[i]) || (c.Err == nil) != (tc.want[i] == nil) {
					t.Errorf("CA %d (%s): err = %v, want %v", i, c.CA.Subject, c.Err, tc.want[i])
				}
				if c.Index != tc.index[i] {
					t.Errorf("CA %d: chose CRL %d, want %d", i, c.Index, tc.index[i])
				}
				wantAny = wantAny || tc.want[i] != nil
			}
			if (err != nil) != wantAny {
				t.Errorf("joined error %v", err)
			}
		})
	}
}

func TestCAsSkipsLeavesAndDuplicates(t *testing.T) {
	p := crltest.New(t, "cas")
	leaf := p.Leaf(t, idA, time.Hour)
	got := crl.CAs([]*x509.Certificate{leaf, p.Inter, p.Root}, p.Chain())
	if len(got) != 2 || got[0] != p.Inter || got[1] != p.Root {
		t.Fatalf("CAs = %d certificates, want the intermediate then the root", len(got))
	}
}

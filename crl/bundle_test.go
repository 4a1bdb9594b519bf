package crl_test

import (
	"bytes"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
)

// twoCRLs returns a ca-crl.pem holding a root CRL then an intermediate CRL.
func twoCRLs(tb testing.TB) []byte {
	p := crltest.New(tb, "bundle")
	root := p.RootCRL(tb, 3, 24*time.Hour, big.NewInt(10))
	inter := crltest.CRL(tb, p.Inter, p.InterKey, 7, p.Now, p.Now.Add(time.Hour), big.NewInt(11), big.NewInt(12))
	return crl.EncodeBundle(root, inter)
}

func TestParseBundle(t *testing.T) {
	good := twoCRLs(t)
	block, _ := pem.Decode(good)
	withHeaders := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Headers: map[string]string{"a": "b"},
		Bytes: block.Bytes})
	for _, tc := range []struct {
		name  string
		data  []byte
		crls  int
		wantE error
	}{
		{"two CRLs parse in order", good, 2, nil},
		{"CRLs after blank lines parse", append([]byte("\n\n"), good...), 2, nil},
		{"text between two CRLs is refused", bytes.Replace(good, []byte("-----\n-----BEGIN"),
			[]byte("-----\nhello\n-----BEGIN"), 1), 0, crl.ErrBadCRL},
		{"text after the CRLs is refused", append(bytes.Clone(good), "trailing"...), 0, crl.ErrBadCRL},
		{"PEM headers are refused", withHeaders, 0, crl.ErrBadCRL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := crl.ParseBundle(tc.data)
			if !errors.Is(err, tc.wantE) || (err == nil) != (tc.wantE == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantE)
			}
			if len(got) != tc.crls {
				t.Fatalf("%d CRLs, want %d", len(got), tc.crls)
			}
		})
	}
	t.Run("the root CRL comes first, as written", func(t *testing.T) {
		got, _ := crl.ParseBundle(good)
		if got[0].Number.Int64() != 3 || got[1].Number.Int64() != 7 {
			t.Fatalf("numbers %s, %s", got[0].Number, got[1].Number)
		}
	})
	files, _ := filepath.Glob("testdata/bundle/*")
	for _, f := range files {
		t.Run("testdata "+filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := crl.ParseBundle(data)
			if strings.HasSuffix(f, ".ok") {
				if err != nil || len(got) != 0 {
					t.Fatalf("a blank bundle: %d CRLs, %v; want none and no error", len(got), err)
				}
				return
			}
			if !errors.Is(err, crl.ErrBadCRL) {
				t.Fatalf("err = %v, want ErrBadCRL", err)
			}
		})
	}
}

func FuzzParseBundle(f *testing.F) {
	f.Add(twoCRLs(f))
	files, _ := filepath.Glob("testdata/bundle/*")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lists, err := crl.ParseBundle(data)
		if err != nil {
			if !errors.Is(err, crl.ErrBadCRL) {
				t.Fatalf("error %v does not wrap ErrBadCRL", err)
			}
			return
		}
		ders := make([][]byte, len(lists))
		for i, l := range lists {
			ders[i] = l.Raw
		}
		again, err := crl.ParseBundle(crl.EncodeBundle(ders...))
		if err != nil || len(again) != len(lists) {
			t.Fatalf("re-encoding %d CRLs gives %d, %v", len(lists), len(again), err)
		}
	})
}

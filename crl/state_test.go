package crl_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/meshca/meshca/crl"
)

// TestUnmarshalChecksEveryField reads testdata/state: files ending in .ok are valid states, the others must be
// refused as corrupt.
func TestUnmarshalChecksEveryField(t *testing.T) {
	files, err := filepath.Glob("testdata/state/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test states: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := crl.Unmarshal(data)
			if strings.HasSuffix(f, ".ok") {
				if err != nil {
					t.Fatalf("a valid state is refused: %v", err)
				}
				roundTrip(t, s)
				sameJSON(t, data, s)
				return
			}
			if !errors.Is(err, crl.ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestStateSurvivesMarshal(t *testing.T) {
	data, err := os.ReadFile("testdata/state/full.json.ok")
	if err != nil {
		t.Fatal(err)
	}
	s, err := crl.Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Revoked) != 1 || len(s.Issued) != 1 || len(s.Quarantine) != 1 || len(s.Marks) != 1 || len(s.CRLs) != 1 ||
		s.LastNumber != 9 || s.InventoryGap.IsZero() {
		t.Fatalf("fields lost in decoding: %+v", s)
	}
	crls := maps.Clone(s.CRLs)
	c := s.Clone()
	c.Revoked[0].Reason, c.Issued[0].Identity = crl.Superseded, "spiffe://cluster.local/ns/x/sa/y"
	c.Marks[0].Identity, c.LastNumber = "spiffe://cluster.local/ns/x/sa/z", 10
	for ca := range c.CRLs {
		c.CRLs[ca] = crl.CRLInfo{Number: 1234}
	}
	if s.Revoked[0].Reason == crl.Superseded || s.Issued[0].Identity == c.Issued[0].Identity ||
		s.Marks[0].Identity == c.Marks[0].Identity || s.LastNumber != 9 || !maps.Equal(s.CRLs, crls) {
		t.Fatal("a change to the clone changed the original")
	}
	roundTrip(t, s)
}

func roundTrip(t *testing.T, s *crl.State) {
	t.Helper()
	a, err := crl.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := crl.Unmarshal(a)
	if err != nil {
		t.Fatalf("Marshal wrote a state Unmarshal refuses: %v\n%s", err, a)
	}
	b, err := crl.Marshal(s2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("the state changed in a round trip:\n%s\n%s", a, b)
	}
}

// sameJSON checks that Marshal writes s as the JSON document data it was read from, compared as decoded JSON
// values: roundTrip compares Marshal's output with itself and so misses a field that Marshal or Unmarshal drops.
func sameJSON(t *testing.T, data []byte, s *crl.State) {
	t.Helper()
	out, err := crl.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("Marshal of the state read from\n%s\nwrote\n%s", data, out)
	}
}

func FuzzUnmarshal(f *testing.F) {
	files, _ := filepath.Glob("testdata/state/*")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := crl.Unmarshal(data)
		if err != nil {
			if !errors.Is(err, crl.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		roundTrip(t, s)
	})
}

package rotation

import (
	"errors"
	"testing"
)

func TestParseHolderRef(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want holderRef
		err  error
	}{
		{"a key and a time are read back", "00000000000000ff.1764528000",
			holderRef{key: 255, renewed: 1764528000}, nil},
		{"the largest key and time are read", "ffffffffffffffff.4294967295",
			holderRef{key: 1<<64 - 1, renewed: 1<<32 - 1}, nil},
		{"a short key is refused", "ff.1", holderRef{}, errHolderRef},
		{"a key that is not hexadecimal is refused", "000000000000000g.1", holderRef{}, errHolderRef},
		{"a missing time is refused", "00000000000000ff", holderRef{}, errHolderRef},
		{"a time past 32 bits is refused", "00000000000000ff.4294967296", holderRef{}, errHolderRef},
		{"a signed time is refused", "00000000000000ff.+1", holderRef{}, errHolderRef},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHolderRef(tt.in)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("parseHolderRef(%q) = %+v, %v; want %+v, %v", tt.in, got, err, tt.want, tt.err)
			}
			if err == nil && got.String() != tt.in {
				t.Fatalf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

// FuzzParseHolderRef: whatever a report holds, parsing never panics, and what parses prints back to a string
// that parses to the same reference.
func FuzzParseHolderRef(f *testing.F) {
	f.Add("00000000000000ff.1764528000")
	f.Add("ffffffffffffffff.4294967295")
	f.Add("0x00000000000000.1")
	f.Add(".")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseHolderRef(s)
		if err != nil {
			return
		}
		back, err := parseHolderRef(r.String())
		if err != nil || back != r {
			t.Fatalf("%q parsed to %+v, which prints as %q and parses to %+v, %v", s, r, r.String(), back, err)
		}
	})
}

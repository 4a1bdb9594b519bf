package crl_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/meshca/meshca/crl"
)

// TestUnmarshalBounds edits one field of testdata/state/full.json.ok to each side of its limit.
func TestUnmarshalBounds(t *testing.T) {
	data, err := os.ReadFile("testdata/state/full.json.ok")
	if err != nil {
		t.Fatal(err)
	}
	full := string(data)
	const id = `"spiffe://td/ns/a/sa/b"`
	longID := `"spiffe://td/` + strings.Repeat("a", crl.MaxIdentityLen-len("spiffe://td/")) + `"`
	for _, tc := range []struct {
		name     string
		old, new string
		valid    bool
	}{
		{"a 20-octet serial is the longest accepted", `"serial":"1f"`, `"serial":"` + strings.Repeat("f", 40) + `"`,
			true},
		{"a 21-octet serial is refused", `"serial":"1f"`, `"serial":"1` + strings.Repeat("0", 40) + `"`, false},
		{"the last second of 9999 is the latest time accepted", `"revokedAt":1700000000`,
			`"revokedAt":253402300799`, true},
		{"a time past 9999 is refused", `"revokedAt":1700000000`, `"revokedAt":253402300800`, false},
		{"a zero revokedAt is refused", `"revokedAt":1700000000`, `"revokedAt":0`, false},
		{"a zero inventoryGap means none", `"inventoryGap":1700050000`, `"inventoryGap":0`, true},
		{"a CRL numbered lastNumber is accepted", `"lastNumber":9`, `"lastNumber":9`, true},
		{"a CRL numbered above lastNumber is refused", `"lastNumber":9`, `"lastNumber":8`, false},
		{"an identity of maxIdentityLen bytes is accepted", id, longID, true},
		{"an identity one byte longer is refused", id, longID[:len(longID)-1] + `a"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(full, tc.old) {
				t.Fatalf("%s not in the test state", tc.old)
			}
			_, err := crl.Unmarshal([]byte(strings.ReplaceAll(full, tc.old, tc.new)))
			if tc.valid && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.valid && !errors.Is(err, crl.ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

package crl

import (
	"bytes"
	"encoding/json"
	"math/big"
	"testing"
	"time"
)

// The inventory's hand-written encoding (appendIssued) is byte for byte what encoding/json writes for []wireIssuance,
// whatever the strings hold (quotes, backslashes, HTML characters, non-ASCII, invalid UTF-8), alone or
// among characters that need no escape.
func TestIssuedJSONIsWhatEncodingJSONWrites(t *testing.T) {
	at := time.Unix(1_900_000_000, 0)
	var recs []Issuance
	for i, id := range []string{"spiffe://cluster.local/ns/a/sa/b", `spiffe://x/ns/"q"/sa/\`, "spiffe://x/ns/<a>&b",
		"spiffe://x/ns/é/sa/ü", "spiffe://x/ns/\u2028/sa/\x7f", "bad \xff utf-8", "", "tab\tnewline\n",
		// strings of one kind of character to escape only, so that no other character sends them the slow way
		`"`, `\`, "<", ">", "&", "\t\n", "\u2028", "\xff"} {
		recs = append(recs, Issuance{Serial: new(big.Int).Lsh(big.NewInt(int64(i+1)), 150), Identity: id,
			CA: CAID("ski:" + id), NotAfter: at.Add(time.Duration(i) * time.Hour), IssuedAt: at})
	}
	for n := range len(recs) + 1 {
		var want []wireIssuance
		for _, r := range recs[:n] {
			want = append(want, wireIssuance{r.Serial.Text(16), r.Identity, r.CA, unix(r.NotAfter), unix(r.IssuedAt)})
		}
		if want == nil {
			want = []wireIssuance{}
		}
		w, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got := appendIssued(nil, recs[:n])
		if !bytes.Equal(got, w) {
			t.Fatalf("%d records:\n got %s\nwant %s", n, got, w)
		}
	}
}

package crl_test

import (
	"bytes"
	"context"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
)

// The inventory is kept soonest expiry first across flushes whatever order issuances arrive in, and when it is
// over its bound the records that expire soonest are the ones dropped.
func TestInventoryKeepsTheLatestExpiriesInOrder(t *testing.T) {
	e := newEnv(t, func(c *crl.RegistryConfig) { c.MaxInventory = 40 })
	ca := crl.IDOf(e.pki.Inter)
	base := e.clk.Now()
	var all []time.Time
	rng := rand.New(rand.NewPCG(1, 2))
	serial := int64(1000)
	for range 3 { // three flushes of 25 records with shuffled expiries
		for range 25 {
			serial++
			notAfter := base.Add(time.Duration(1+rng.IntN(7200)) * time.Second).Truncate(time.Second)
			all = append(all, notAfter)
			if err := e.reg.Record(crl.Issuance{Serial: big.NewInt(serial), Identity: idA, CA: ca,
				NotAfter: notAfter, IssuedAt: base}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.reg.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	got := e.reg.Snapshot().Issued
	if !slices.IsSortedFunc(got, func(a, b crl.Issuance) int { return a.NotAfter.Compare(b.NotAfter) }) {
		t.Fatal("the inventory is not soonest expiry first")
	}
	slices.SortFunc(all, time.Time.Compare)
	want := all[len(all)-40:]
	if len(got) != 40 {
		t.Fatalf("%d records kept, want the bound, 40", len(got))
	}
	for i, rec := range got {
		if !rec.NotAfter.Equal(want[i]) {
			t.Fatalf("record %d expires %s, want %s: the soonest-expiring ones must be dropped", i, rec.NotAfter,
				want[i])
		}
	}
}

// Marshal writes the same bytes for a state whatever the order of its inventory.
func TestMarshalIsIndependentOfInventoryOrder(t *testing.T) {
	at := time.Unix(1_900_000_000, 0).UTC()
	s := &crl.State{}
	for i := range 20 {
		s.Issued = append(s.Issued, crl.Issuance{Serial: big.NewInt(int64(100 + i)), Identity: idA,
			CA: crashCA, NotAfter: at.Add(time.Duration(i%7) * time.Minute), IssuedAt: at})
	}
	sorted, err := crl.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(s.Issued), func(i, j int) {
		s.Issued[i], s.Issued[j] = s.Issued[j], s.Issued[i]
	})
	shuffled, err := crl.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sorted, shuffled) {
		t.Fatalf("Marshal depends on the inventory's order:\n%s\n%s", sorted, shuffled)
	}
}

// A state file whose inventory is out of order (written by hand, or by another tool) is put in order at the
// next flush.
func TestAnInventoryOutOfOrderIsSortedAtTheNextFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations.json")
	state := `{"version":1,"issued":[` +
		`{"s":"30","i":"spiffe://td/ns/a/sa/b","c":"` + string(crashCA) + `","n":4000000000,"t":1700000000},` +
		`{"s":"20","i":"spiffe://td/ns/a/sa/b","c":"` + string(crashCA) + `","n":3000000000,"t":1700000000}]}`
	if err := os.WriteFile(path, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path)
	reg, err := crl.NewRegistry(context.Background(), crl.RegistryConfig{Store: s, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Record(crl.Issuance{Serial: big.NewInt(0x25), Identity: "spiffe://td/ns/a/sa/b", CA: crashCA,
		NotAfter: time.Unix(3_500_000_000, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var serials []int64
	for _, rec := range reg.Snapshot().Issued {
		serials = append(serials, rec.Serial.Int64())
	}
	if !slices.Equal(serials, []int64{0x20, 0x25, 0x30}) {
		t.Fatalf("inventory serials %x, want 20 25 30 (soonest expiry first)", serials)
	}
}

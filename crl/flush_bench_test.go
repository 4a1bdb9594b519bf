package crl_test

import (
	"context"
	"fmt"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
)

// BenchmarkFlushFullInventory is one flush of the file store at the default inventory bound (20,000 records)
// with 5,000 new issuances: what meshca pays every FlushInterval (5 s) at 1,000 certificates/s.
func BenchmarkFlushFullInventory(b *testing.B) {
	s, err := crl.OpenFile(filepath.Join(b.TempDir(), "revocations.json"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	reg, err := crl.NewRegistry(ctx, crl.RegistryConfig{Store: s, FlushInterval: time.Hour, Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	serial := int64(1 << 40)
	record := func(n int) {
		for range n {
			serial++
			id := fmt.Sprintf("spiffe://cluster.local/ns/ns%d/sa/sa%d", serial%50, serial%400)
			if err := reg.Record(crl.Issuance{Serial: big.NewInt(serial), Identity: id, CA: crashCA,
				NotAfter: now.Add(time.Hour + time.Duration(serial%3600)*time.Second)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for range 4 {
		record(5000)
		if err := reg.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		record(5000)
		b.StartTimer()
		if err := reg.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

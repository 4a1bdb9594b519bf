package crl_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/crl"
)

var errStoreDown = errors.New("store down")

// failingStore is a real FileStore whose updates fail while fail is set; during a failing update it first runs
// during, as a record arriving concurrently would.
type failingStore struct {
	*crl.FileStore
	mu     sync.Mutex
	fail   bool
	during func()
}

func (s *failingStore) Update(ctx context.Context, fn func(*crl.State) (bool, error)) (*crl.State, error) {
	s.mu.Lock()
	fail, during := s.fail, s.during
	s.mu.Unlock()
	if !fail {
		return s.FileStore.Update(ctx, fn)
	}
	if during != nil {
		during()
	}
	return nil, errStoreDown
}

func TestAFailedFlushKeepsNoMoreThanMaxPending(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := crl.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	fs := &failingStore{FileStore: e.store}
	e.reg = e.registry(t, fs, func(c *crl.RegistryConfig) { c.MaxPending, c.Metrics = 2, m })
	e.issue(t, idA, time.Hour)
	e.issue(t, idA, time.Hour)
	fs.fail, fs.during = true, func() { e.issue(t, idA, time.Hour) } // arrives while the flush runs
	ctx := context.Background()
	if err := e.reg.Flush(ctx); !errors.Is(err, errStoreDown) {
		t.Fatalf("Flush = %v, want the store's error", err)
	}
	if n := gauge(t, reg, "meshca_crl_inventory_dropped_total", nil); n != 1 {
		t.Fatalf("%v records dropped, want 1: 3 records for a buffer of 2", n)
	}
	fs.fail = false
	if err := e.reg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(e.reg.Snapshot().Issued); n != 2 {
		t.Fatalf("%d records stored after the failed flush, want maxPending (2)", n)
	}
}

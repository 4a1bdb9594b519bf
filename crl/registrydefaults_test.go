package crl_test

import (
	"context"
	"log/slog"
	"math/big"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
)

func TestRegistryDefaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		backdate time.Duration // configured
		want     time.Duration // thisUpdate before now
	}{
		{"by default thisUpdate is a minute in the past", 0, time.Minute},
		{"a configured backdate is kept", 5 * time.Minute, 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *crl.RegistryConfig) { c.Backdate = tc.backdate })
			l := e.crlOf(t).List
			if want := e.clk.Now().Add(-tc.want).Truncate(time.Second); !l.ThisUpdate.Equal(want) {
				t.Fatalf("thisUpdate %s, want %s", l.ThisUpdate, want)
			}
			if got := l.NextUpdate.Sub(l.ThisUpdate); got != 24*time.Hour {
				t.Fatalf("lifetime %s, want the default 24h", got)
			}
		})
	}
	t.Run("Run with the default flush interval flushes at its end", func(t *testing.T) {
		e := newEnv(t)
		e.issue(t, idA, time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := e.reg.Run(ctx); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if n := len(e.reg.Snapshot().Issued); n != 1 {
			t.Fatalf("%d records flushed at the end of Run, want 1", n)
		}
	})
	t.Run("by default an entry without a known expiry is kept 90 days", func(t *testing.T) {
		e := newEnv(t)
		res, err := e.reg.Revoke(context.Background(), crl.RevokeRequest{Serial: big.NewInt(98),
			CA: crl.IDOf(e.pki.Inter)})
		if err != nil {
			t.Fatal(err)
		}
		if want := e.clk.Now().Add(90 * 24 * time.Hour).Truncate(time.Second); !res.NotAfter.Equal(want) {
			t.Fatalf("notAfter %s, want %s", res.NotAfter, want)
		}
	})
	t.Run("the configured logger gets the revocations", func(t *testing.T) {
		rec := newRecorder()
		e := newEnv(t, func(c *crl.RegistryConfig) { c.Logger = slog.New(rec) })
		_, err := e.reg.Revoke(context.Background(), crl.RevokeRequest{Serial: big.NewInt(99),
			CA: crl.IDOf(e.pki.Inter)})
		if err != nil {
			t.Fatal(err)
		}
		if n := rec.count("INFO certificate revoked"); n != 1 {
			t.Fatalf("%d revocations logged, want 1", n)
		}
	})
}

func TestSyncOfAnUnchangedStoreSignalsNoChange(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	changed := e.reg.Changed()
	if err := e.reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
		t.Fatal("Changed fired for a state read again at the same revision")
	default:
	}
	if err := e.reg.Quarantine(ctx, idA, e.clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed did not fire for a new revision")
	}
}

package crl_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
)

// TestDirOutputDefaults: without a logger and a retry interval, DirOutput logs to slog.Default and retries a
// failed write after 5s, not at once.
func TestDirOutputDefaults(t *testing.T) {
	pe := newPublisher(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, crl.OutputFile, "x"), 0o700); err != nil { // in the way
		t.Fatal(err)
	}
	runOutputWith(t, pe, crl.DirOutputConfig{Dir: dir, Source: pe.pub, Metrics: pe.m})
	catest.Eventually(t, 5*time.Second, "the first failed write counted", func() error {
		if n := publishErrors(t, pe, crl.TargetDir); n < 1 {
			return fmt.Errorf("%v failed writes counted", n)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	if n := publishErrors(t, pe, crl.TargetDir); n != 1 {
		t.Fatalf("%v failed writes within 300ms, want 1 (the default retry interval is 5s)", n)
	}
}

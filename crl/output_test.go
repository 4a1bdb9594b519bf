package crl_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"crypto/x509"
	"math/big"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
)

// runOutput runs a DirOutput of pe's publisher (and the publisher) into dir until the test ends.
func runOutput(t *testing.T, pe *pubEnv, dir string) *crl.DirOutput {
	t.Helper()
	return runOutputWith(t, pe, crl.DirOutputConfig{Dir: dir, Source: pe.pub, Logger: discard(),
		RetryInterval: 20 * time.Millisecond, Metrics: pe.m})
}

// runOutputWith runs the publisher and a DirOutput made from cfg until the test ends.
func runOutputWith(t *testing.T, pe *pubEnv, cfg crl.DirOutputConfig) *crl.DirOutput {
	t.Helper()
	o, err := crl.NewDirOutput(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = pe.pub.Run(ctx) })
	wg.Go(func() { _ = o.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return o
}

// The output directory holds the published ca-crl.pem at once and after each revocation, mode 0644, and a
// reader never sees a partly written set (each read parses whole); no temporary file stays behind.
func TestDirOutputFollowsThePublishedCRLs(t *testing.T) {
	pe := newPublisher(t)
	dir := t.TempDir()
	stale := filepath.Join(dir, ".ca-crl.pem.tmp-123") // left by a crash
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := runOutput(t, pe, dir)
	same := func() error {
		want, ok := pe.pub.PEM()
		got, err := os.ReadFile(o.Path())
		switch {
		case !ok:
			return errors.New("publisher not ready")
		case err != nil:
			return err
		case !bytes.Equal(got, want):
			return fmt.Errorf("%s holds %d bytes, the publisher %d", o.Path(), len(got), len(want))
		}
		return nil
	}
	catest.Eventually(t, 5*time.Second, "ca-crl.pem written", same)
	if fi, err := os.Stat(o.Path()); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("ca-crl.pem: %v, mode %v; want 0644 (Istio's proxies run as another user)", err, fi.Mode())
	}
	stop := make(chan struct{})
	var reads sync.WaitGroup
	reads.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			data, err := os.ReadFile(o.Path())
			if err != nil {
				t.Errorf("reading while revoking: %v", err)
				return
			}
			if _, err := crl.ParseBundle(data); err != nil || len(data) == 0 {
				t.Errorf("a reader saw a partial ca-crl.pem (%d bytes): %v", len(data), err)
				return
			}
		}
	})
	for i := range 5 {
		leaf := pe.pki.Leaf(t, fmt.Sprintf("spiffe://cluster.local/ns/default/sa/s%d", i), time.Hour)
		if _, err := pe.env.reg.Revoke(context.Background(), crl.RevokeRequest{Certificate: leaf,
			Reason: crl.KeyCompromise}); err != nil {
			t.Fatal(err)
		}
		catest.Eventually(t, 5*time.Second, "ca-crl.pem follows the revocation", func() error {
			if err := same(); err != nil {
				return err
			}
			if !listedInAny(pe.published(t), leaf.SerialNumber) {
				return errors.New("the revoked serial is not listed yet")
			}
			return nil
		})
	}
	close(stop)
	reads.Wait()
	// A write can still be in flight (the publisher re-signs on its own schedule): wait for it, since a leaked
	// temporary file never goes away.
	catest.Eventually(t, 5*time.Second, "no temporary file left in the output directory", func() error {
		if left, _ := filepath.Glob(filepath.Join(dir, ".ca-crl.pem.tmp-*")); len(left) > 0 {
			return fmt.Errorf("temporary files left: %v", left)
		}
		return nil
	})
}

// A write that fails (ca-crl.pem is in the way as a directory, which even root cannot rename over) is counted
// and retried until it succeeds.
func TestDirOutputRetriesFailedWrites(t *testing.T) {
	pe := newPublisher(t)
	dir := t.TempDir()
	blocker := filepath.Join(dir, crl.OutputFile)
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	o := runOutput(t, pe, dir)
	catest.Eventually(t, 5*time.Second, "failed writes counted", func() error {
		if n := publishErrors(t, pe, crl.TargetDir); n < 2 {
			return fmt.Errorf("%v failed writes counted, want at least 2 (a retry)", n)
		}
		return nil
	})
	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 5*time.Second, "ca-crl.pem written once the way is clear", func() error {
		fi, err := os.Stat(o.Path())
		if err == nil && !fi.Mode().IsRegular() {
			err = errors.New("not a regular file yet")
		}
		return err
	})
}

func TestNewDirOutputRefusesAMissingDirectory(t *testing.T) {
	pe := newPublisher(t)
	_, err := crl.NewDirOutput(crl.DirOutputConfig{Dir: filepath.Join(t.TempDir(), "absent"), Source: pe.pub})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("NewDirOutput = %v, want os.ErrNotExist", err)
	}
}

func listedInAny(lists []*x509.RevocationList, serial *big.Int) bool {
	for _, l := range lists {
		if _, ok := listed(l, serial); ok {
			return true
		}
	}
	return false
}

// publishErrors reads meshca_crl_publish_errors_total{target} from pe's registry.
func publishErrors(t *testing.T, pe *pubEnv, target string) float64 {
	t.Helper()
	mfs, err := pe.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "meshca_crl_publish_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" && l.GetValue() == target {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no meshca_crl_publish_errors_total{target=%q}", target)
	return 0
}

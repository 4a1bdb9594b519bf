package file_test

import (
	"context"
	"crypto/x509"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
)

// TestNextDirIsPolled: a next CA written into an empty nextDir after start is found by the reload loop, with no
// call to Reload, and signs once the signing root is its root.
func TestNextDirIsPolled(t *testing.T) {
	oldCA, newCA := generate(t), generate(t)
	next := t.TempDir()
	var root atomic.Pointer[x509.Certificate]
	b, err := file.New(context.Background(), file.Config{Dir: writeDir(t, oldCA), NextDir: next,
		ReloadInterval: 10 * time.Millisecond, Logger: catest.DiscardLogger(), SigningRoot: root.Load})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := newCA.WriteDir(next); err != nil {
		t.Fatal(err)
	}
	root.Store(newCA.Root)
	deadline := time.Now().Add(10 * time.Second)
	for {
		chain, err := trySign(t, b)
		if err == nil && chain[1].Equal(newCA.Intermediate) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the next CA written after start does not sign after 10s of 10ms polls (last: %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

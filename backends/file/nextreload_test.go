package file_test

import (
	"context"
	"crypto/x509"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
)

// While a signing root is set, a cacerts reload that renews the CA under the same root (nextDir unchanged)
// makes the renewed CA sign at once: the choice made for the old cacerts CA is not reused for the new one.
func TestASigningRootFollowsARenewedCacertsCA(t *testing.T) {
	oldCA, nextCA := generate(t), generate(t)
	renewed := generateWith(t, file.GenerateOptions{Organization: "renewed", Root: oldCA.Root,
		RootKey: oldCA.RootKey})
	cacerts := writeDir(t, oldCA)
	var root atomic.Pointer[x509.Certificate]
	root.Store(oldCA.Root)
	b, err := nextBackend(t, cacerts, writeDir(t, nextCA), &root)
	if err != nil {
		t.Fatal(err)
	}
	if chain, err := trySign(t, b); err != nil || !chain[1].Equal(oldCA.Intermediate) {
		t.Fatalf("before the renewal: Sign: %v; want a leaf from the cacerts CA", err)
	}
	if err := renewed.WriteDir(cacerts); err != nil {
		t.Fatal(err)
	}
	if changed, err := b.Reload(); err != nil || !changed {
		t.Fatalf("Reload = %v, %v; want the renewed CA loaded", changed, err)
	}
	chain, err := trySign(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if !chain[1].Equal(renewed.Intermediate) {
		t.Fatalf("after the renewal the leaf is issued by %q, want the renewed CA", chain[1].Subject)
	}
}

// Reading nextDir again finds what changed there and only that: an unchanged next CA is not loaded (or counted)
// again, and a next CA replaced by another is what SwitchRoots then reports, as often as it is replaced.
func TestNextDirIsReadAgainOnlyWhenItChanged(t *testing.T) {
	oldCA, first, second := generate(t), generate(t), generate(t)
	next := writeDir(t, first)
	reg := prometheus.NewRegistry()
	b, err := file.New(context.Background(), file.Config{Dir: writeDir(t, oldCA), NextDir: next,
		ReloadInterval: time.Hour, Logger: catest.DiscardLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	switchesTo := func(want *file.Generated, loads float64) {
		t.Helper()
		inUse, nextRoot, err := b.SwitchRoots(context.Background())
		if err != nil || !inUse.Equal(oldCA.Root) || !nextRoot.Equal(want.Root) {
			t.Fatalf("SwitchRoots: %v; or not the old root and the root of %s", err, want.Root.Subject)
		}
		if n := testutil.ToFloat64(reloadCounter(t, reg, "success")); n != loads {
			t.Fatalf("%v reloads counted, want %v", n, loads)
		}
	}
	switchesTo(first, 0)
	switchesTo(first, 0)
	for i, g := range []*file.Generated{second, first} {
		if err := g.WriteDir(next); err != nil {
			t.Fatal(err)
		}
		switchesTo(g, float64(i+1))
	}
}

package file_test

import (
	"crypto/x509"
	"sync/atomic"
	"testing"

	"github.com/meshca/meshca/backends/file"
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

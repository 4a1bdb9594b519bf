package file_test

import (
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
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

// TestSignCRLSignsAsTheActiveCA: SignCRL signs with the CA that signs leaves, and refuses when the signing root
// is one no CA here chains to.
func TestSignCRLSignsAsTheActiveCA(t *testing.T) {
	oldCA, newCA, third := generate(t), generate(t), generate(t)
	var root atomic.Pointer[x509.Certificate]
	b, err := nextBackend(t, writeDir(t, oldCA), writeDir(t, newCA), &root)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(5), ThisUpdate: now, NextUpdate: now.Add(time.Hour)}
	for _, g := range []*file.Generated{oldCA, newCA} {
		root.Store(g.Root)
		der, err := b.SignCRL(context.Background(), tmpl)
		if err != nil {
			t.Fatal(err)
		}
		l, err := x509.ParseRevocationList(der)
		if err != nil || !crl.Matches(l, g.Intermediate) {
			t.Fatalf("the CRL is not the signing intermediate's: %v", err)
		}
	}
	root.Store(third.Root)
	if der, err := b.SignCRL(context.Background(), tmpl); !errors.Is(err, file.ErrNoSigningCA) || der != nil {
		t.Fatalf("SignCRL without a signing CA = %d bytes, %v; want ErrNoSigningCA", len(der), err)
	}
}

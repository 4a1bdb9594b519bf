package file_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
)

// nextBackend starts a file backend on dir with nextDir next, whose signing root is what root holds.
func nextBackend(t *testing.T, dir, next string, root *atomic.Pointer[x509.Certificate]) (*file.Backend, error) {
	t.Helper()
	b, err := file.New(context.Background(), file.Config{Dir: dir, NextDir: next, ReloadInterval: time.Hour,
		Logger: catest.DiscardLogger(), SigningRoot: root.Load})
	if err == nil {
		t.Cleanup(func() { b.Close() })
	}
	return b, err
}

// trySign issues a workload certificate and returns its chain or the error.
func trySign(t *testing.T, b *file.Backend) ([]*x509.Certificate, error) {
	id, _ := url.Parse("spiffe://cluster.local/ns/default/sa/app")
	resp, err := b.Sign(context.Background(), &backends.SignRequest{PublicKey: catest.ECKey(t).Public(),
		URIs: []*url.URL{id}, TTL: time.Hour})
	if err != nil {
		return nil, err
	}
	return resp.Chain, nil
}

func emptyDir(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{file.CACertFile, file.CAKeyFile, file.CertChainFile, file.RootCertFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNextDirSignsWithTheCAOfTheSigningRoot: one backend holds the old CA in dir and the next CA in nextDir;
// the signing root alone decides which signs, and Roots serves that CA's roots.
func TestNextDirSignsWithTheCAOfTheSigningRoot(t *testing.T) {
	oldCA, newCA, third := generate(t), generate(t), generate(t)
	var root atomic.Pointer[x509.Certificate]
	b, err := nextBackend(t, writeDir(t, oldCA), writeDir(t, newCA), &root)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		root    *x509.Certificate
		want    *file.Generated // nil: refused
		wantErr error
	}{
		{name: "without a signing root the cacerts CA signs although nextDir holds a CA", want: oldCA},
		{name: "the next root as signing root makes the next CA sign", root: newCA.Root, want: newCA},
		{name: "the old root as signing root makes the cacerts CA sign again", root: oldCA.Root, want: oldCA},
		{name: "a root neither CA chains to is refused as unavailable", root: third.Root,
			wantErr: backends.ErrUnavailable},
		{name: "a root neither CA chains to is named as no signing CA", root: third.Root,
			wantErr: file.ErrNoSigningCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root.Store(tt.root)
			chain, err := trySign(t, b)
			if tt.want == nil {
				if !errors.Is(err, tt.wantErr) || !errors.Is(b.Check(context.Background()), tt.wantErr) {
					t.Fatalf("Sign: %v; want an error wrapping %v from Sign and Check", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "nextDir") {
					t.Fatalf("the error %q does not name nextDir", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			roots, _ := b.Roots(context.Background())
			if !chain[1].Equal(tt.want.Intermediate) || len(roots) != 1 || !roots[0].Equal(tt.want.Root) {
				t.Fatalf("signed by another CA than %q, or %d roots", tt.name, len(roots))
			}
		})
	}
}

// TestNextDirNeverLosesTheSigningCA: while the next CA signs, emptying nextDir or replacing cacerts with a CA
// that does not chain to the signing root is refused; once the next CA is copied into cacerts, nextDir may be
// emptied, and the same CA signs throughout.
func TestNextDirNeverLosesTheSigningCA(t *testing.T) {
	oldCA, newCA := generate(t), generate(t)
	cacerts, next := writeDir(t, oldCA), writeDir(t, newCA)
	var root atomic.Pointer[x509.Certificate]
	root.Store(newCA.Root)
	b, err := nextBackend(t, cacerts, next, &root)
	if err != nil {
		t.Fatal(err)
	}
	signsWithNew := func(when string) {
		t.Helper()
		chain, err := trySign(t, b)
		if err != nil || !chain[1].Equal(newCA.Intermediate) {
			t.Fatalf("%s: Sign: %v; want a leaf from the next CA", when, err)
		}
	}
	emptyDir(t, next)
	if _, _, err := b.SwitchRoots(context.Background()); !errors.Is(err, file.ErrInvalidCA) ||
		!strings.Contains(err.Error(), "signing root") {
		t.Fatalf("emptying nextDir while its CA alone signs: %v, want ErrInvalidCA naming the signing root", err)
	}
	signsWithNew("after a refused emptying of nextDir")
	if err := newCA.WriteDir(next); err != nil {
		t.Fatal(err)
	}
	if err := generate(t).WriteDir(cacerts); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reload(); err != nil {
		t.Fatalf("a new cacerts while nextDir holds the signing CA: %v", err)
	}
	emptyDir(t, next)
	if _, _, err := b.SwitchRoots(context.Background()); !errors.Is(err, file.ErrInvalidCA) {
		t.Fatalf("emptying nextDir while its CA alone signs: %v, want ErrInvalidCA", err)
	}
	if err := newCA.WriteDir(cacerts); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	signsWithNew("the next CA copied into cacerts")
	_, _, err = b.SwitchRoots(context.Background())
	if err == nil || !strings.Contains(err.Error(), "holds no CA") {
		t.Fatalf("SwitchRoots with nextDir emptied after the copy: %v, want \"holds no CA\"", err)
	}
	signsWithNew("nextDir emptied after the copy")
	if err := generate(t).WriteDir(cacerts); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reload(); !errors.Is(err, file.ErrInvalidCA) {
		t.Fatalf("replacing the only signing CA in cacerts: %v, want ErrInvalidCA", err)
	}
	signsWithNew("after a refused cacerts")
}

// TestNextDirIsCheckedAsCacertsIs: a missing or empty nextDir is no next CA (the optional Secret is absent), a
// broken one is refused at start naming nextDir, and CheckSwitch verifies both CAs against the given roots.
func TestNextDirIsCheckedAsCacertsIs(t *testing.T) {
	oldCA, newCA, other := generate(t), generate(t), generate(t)
	mismatched := writeDir(t, newCA)
	if err := os.WriteFile(filepath.Join(mismatched, file.CAKeyFile), other.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	keyless := writeDir(t, newCA)
	if err := os.Remove(filepath.Join(keyless, file.CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		next      string
		newErr    string // empty: New succeeds
		switchErr string // empty: SwitchRoots succeeds
	}{
		{name: "a missing nextDir is no next CA", next: filepath.Join(t.TempDir(), "absent"),
			switchErr: "holds no CA"},
		{name: "an empty nextDir is no next CA", next: t.TempDir(), switchErr: "holds no CA"},
		{name: "a nextDir whose key does not match its certificate is refused", next: mismatched,
			newErr: "does not hold the key"},
		{name: "a nextDir with a certificate and no key is refused", next: keyless, newErr: file.CAKeyFile},
		{name: "a nextDir with an ML-DSA CA beside a classical one is refused",
			next:   writeDir(t, generateWith(t, file.GenerateOptions{NewKey: file.NewMLDSA65Key})),
			newErr: "kind of key"},
		{name: "a nextDir with the next CA is loaded", next: writeDir(t, newCA)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var root atomic.Pointer[x509.Certificate]
			b, err := nextBackend(t, writeDir(t, oldCA), tt.next, &root)
			if tt.newErr != "" {
				if !errors.Is(err, file.ErrInvalidCA) || !strings.Contains(err.Error(), "nextDir") ||
					!strings.Contains(err.Error(), tt.newErr) {
					t.Fatalf("New: %v; want ErrInvalidCA naming nextDir and %q", err, tt.newErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			inUse, next, err := b.SwitchRoots(context.Background())
			if tt.switchErr != "" {
				if !errors.Is(err, file.ErrInvalidCA) || !strings.Contains(err.Error(), tt.switchErr) {
					t.Fatalf("SwitchRoots: %v; want ErrInvalidCA with %q", err, tt.switchErr)
				}
				return
			}
			if err != nil || !inUse.Equal(oldCA.Root) || !next.Equal(newCA.Root) {
				t.Fatalf("SwitchRoots: %v; want the old and the new root", err)
			}
		})
	}
}

// TestCheckSwitch: the CA in use must chain to the old root and the next CA to the next root.
func TestCheckSwitch(t *testing.T) {
	oldCA, newCA, other := generate(t), generate(t), generate(t)
	var root atomic.Pointer[x509.Certificate]
	b, err := nextBackend(t, writeDir(t, oldCA), writeDir(t, newCA), &root)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		old, next *x509.Certificate
		wantErr   string // empty: passes
	}{
		{name: "the roots of both CAs pass", old: oldCA.Root, next: newCA.Root},
		{name: "an old root the cacerts CA does not chain to is refused", old: other.Root, next: newCA.Root,
			wantErr: "old root"},
		{name: "a next root the next CA does not chain to is refused", old: oldCA.Root, next: other.Root,
			wantErr: "next root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.CheckSwitch(context.Background(), tt.old, tt.next)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, file.ErrInvalidCA) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckSwitch: %v; want ErrInvalidCA about the %s", err, tt.wantErr)
			}
		})
	}
	if err := (&file.Config{Dir: "/etc/cacerts", NextDir: "/etc/cacerts"}).Validate(); err == nil {
		t.Fatal("Validate accepted nextDir equal to dir")
	}
}

package file

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/meshca/meshca/backends"
)

// The next CA (Config.NextDir) lives in this file: a second cacerts directory, read and checked by the same
// code as the first (readDir, parseAuthority), and the choice between the two CAs by the rotation's signing
// root (Config.SigningRoot). Which CA signs is decided by the shared rotation state alone, so that every
// replica agrees, and an operator may copy the next CA into dir or secret and empty nextDir at any time
// without a change in issuance.

// ErrNoSigningCA means neither the cacerts CA nor the next CA chains to the rotation's signing root.
var ErrNoSigningCA = errors.New("no CA for the rotation's signing root")

// nextCA holds the CA of Config.NextDir. A missing or empty directory (an absent optional Secret) is no next
// CA; a broken one is refused as a broken cacerts set is, and the previous next CA (or none) stays.
type nextCA struct {
	cur  atomic.Pointer[authority] // nil: no next CA
	seen [sha256.Size]byte         // digest of the files in force, zero for none (under Backend.reload)
	read bool                      // whether seen holds a reading
}

// selection is the CA chosen for one signing root and one pair of loaded CAs.
type selection struct {
	root      *x509.Certificate
	cur, next *authority
	chosen    *authority // nil: neither chains to root
}

// signingRoot is the rotation's signing root, or nil when the choice is not this backend's to make (no
// nextDir, no rotation, or no rotation ever switched).
func (b *Backend) signingRoot() *x509.Certificate {
	if b.cfg.NextDir == "" || b.cfg.SigningRoot == nil {
		return nil
	}
	return b.cfg.SigningRoot()
}

// active returns the CA that signs now: the cacerts CA, unless a signing root is set, then whichever of the
// cacerts CA and the next CA chains to it (cacerts first). Neither: an error wrapping backends.ErrUnavailable.
func (b *Backend) active() (*authority, error) {
	cur := b.current.Load()
	root := b.signingRoot()
	if root == nil {
		return cur, nil
	}
	next := b.next.cur.Load()
	s := b.sel.Load()
	if s == nil || s.root != root || s.cur != cur || s.next != next {
		s = &selection{root: root, cur: cur, next: next, chosen: pick(root, b.cfg.Clock(), cur, next)}
		b.sel.Store(s)
	}
	if s.chosen == nil {
		return nil, fmt.Errorf("file: %w: %w: neither %s nor nextDir %s holds a CA that chains to %q (sha256 %x); "+
			"put that CA in one of them, or roll the rotation back (docs/root-rotation.md)", backends.ErrUnavailable,
			ErrNoSigningCA, b.origin, b.cfg.NextDir, bounded(root.Subject.String()), sha256.Sum256(root.Raw))
	}
	return s.chosen, nil
}

// activeOrCurrent is active, or the cacerts CA when no CA chains to the signing root: what Roots, CAChain and
// CRLBundle serve meanwhile (Sign, SignCRL and Check refuse).
func (b *Backend) activeOrCurrent() *authority {
	if a, err := b.active(); err == nil {
		return a
	}
	return b.current.Load()
}

// pick returns the first of cas that chains to root at now, or nil.
func pick(root *x509.Certificate, now time.Time, cas ...*authority) *authority {
	for _, a := range cas {
		if a != nil && a.chainsTo(root, now) {
			return a
		}
	}
	return nil
}

// chainsTo reports whether a's CA certificate verifies to root through a's chain at now.
func (a *authority) chainsTo(root *x509.Certificate, now time.Time) bool {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range a.chain[1:] {
		inters.AddCert(c)
	}
	_, err := a.cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

// keepsSigningCA refuses a change of the loaded CAs (cur, next → newCur, newNext) that would leave no CA for
// the signing root while one serves it now: a reload never takes the signing CA away.
func (b *Backend) keepsSigningCA(cur, next, newCur, newNext *authority) error {
	root := b.signingRoot()
	now := b.cfg.Clock()
	if root == nil || pick(root, now, cur, next) == nil || pick(root, now, newCur, newNext) != nil {
		return nil
	}
	return fmt.Errorf("%w: the change would leave neither %s nor nextDir %s with a CA that chains to the "+
		"rotation's signing root %q; keep that CA in one of them (copy it to the other first)", ErrInvalidCA,
		b.origin, b.cfg.NextDir, bounded(root.Subject.String()))
}

// readNext reads the files of nextDir; none (nil) when the directory is missing or holds neither ca-cert.pem
// nor ca-key.pem.
func readNext(dir string) (map[string][]byte, error) {
	missing := 0
	for _, name := range []string{CACertFile, CAKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, os.ErrNotExist) {
			missing++
		}
	}
	if missing == 2 {
		return nil, nil
	}
	return readDir(dir)
}

// reloadNext reads nextDir again; it reports whether the next CA changed. On error the previous one stays.
func (b *Backend) reloadNext() (bool, error) {
	b.reload.Lock()
	defer b.reload.Unlock()
	n := &b.next
	files, err := readNext(b.cfg.NextDir)
	var digest [sha256.Size]byte
	if err == nil && files != nil {
		digest = digestFiles(files)
	}
	old := n.cur.Load()
	if n.read && err == nil && digest == n.seen {
		return false, nil
	}
	var a *authority
	if err == nil && files != nil {
		a, err = parseAuthority(files, b.cfg.Clock())
	}
	if err == nil && a != nil && kindOfKey(a.signer.Public()) != b.kind() {
		err = fmt.Errorf("%w: the next CA has a %s key and the CA of %s a %s one: a rotation keeps the kind of "+
			"key", ErrInvalidCA, kindOfKey(a.signer.Public()), b.origin, b.kind())
	}
	if err == nil {
		err = b.keepsSigningCA(b.current.Load(), old, b.current.Load(), a)
	}
	if err != nil { // read again at the next poll, as a refused cacerts set is
		b.reloads.WithLabelValues("error").Inc()
		b.cfg.Logger.Error("file backend refused the next CA files; the previous next CA (if any) stays",
			"source", "nextDir "+b.cfg.NextDir, "error", err)
		return false, fmt.Errorf("file: nextDir %s: %w", b.cfg.NextDir, err)
	}
	first := !n.read
	n.seen, n.read = digest, true
	if a != nil {
		a.digest = digest
	}
	n.cur.Store(a)
	if a != nil && !first { // counted as cacerts is: reloads after the start
		b.reloads.WithLabelValues("success").Inc()
	}
	switch {
	case a != nil:
		b.cfg.Logger.Info("file backend loaded the next CA", "source", "nextDir "+b.cfg.NextDir,
			"subject", a.cert.Subject.String(), "not_after", a.cert.NotAfter.UTC(), "roots", len(a.roots))
	case old != nil:
		b.cfg.Logger.Info("file backend has no next CA any more: nextDir is empty", "source",
			"nextDir "+b.cfg.NextDir)
	}
	return old != a, nil
}

// SwitchRoots reads nextDir afresh and returns the root the cacerts CA (dir or secret) chains to and the root
// the next CA chains to: the old and the next root of a rotation that meshca switches itself. It fails, naming
// nextDir, when there is no next CA or it is broken.
func (b *Backend) SwitchRoots(context.Context) (inUse, next *x509.Certificate, err error) {
	if b.cfg.NextDir == "" {
		return nil, nil, fmt.Errorf("file: %w: nextDir is not set: the operator switches the CA in %s",
			ErrInvalidCA, b.origin)
	}
	if _, err := b.reloadNext(); err != nil {
		return nil, nil, err
	}
	a := b.next.cur.Load()
	if a == nil {
		return nil, nil, fmt.Errorf("file: %w: nextDir %s holds no CA: put the next CA there (ca-cert.pem, "+
			"ca-key.pem, cert-chain.pem, root-cert.pem; in a cluster the cacerts-next Secret)", ErrInvalidCA,
			b.cfg.NextDir)
	}
	cur := b.current.Load()
	return cur.chain[len(cur.chain)-1], a.chain[len(a.chain)-1], nil
}

// CheckSwitch reads nextDir afresh and checks that meshca can switch from old to next: the cacerts CA chains
// to old (it signs until the rotation activates, and again after a rollback) and the next CA, loadable with
// its key matching its certificate, chains to next.
func (b *Backend) CheckSwitch(ctx context.Context, old, next *x509.Certificate) error {
	if _, _, err := b.SwitchRoots(ctx); err != nil {
		return err
	}
	now := b.cfg.Clock()
	if !b.current.Load().chainsTo(old, now) {
		return fmt.Errorf("file: %w: the CA of %s does not chain to the old root %q: it must sign until the "+
			"rotation activates (copy the CA in use into it first)", ErrInvalidCA, b.origin,
			bounded(old.Subject.String()))
	}
	if !b.next.cur.Load().chainsTo(next, now) {
		return fmt.Errorf("file: %w: the CA of nextDir %s does not chain to the next root %q", ErrInvalidCA,
			b.cfg.NextDir, bounded(next.Subject.String()))
	}
	return nil
}

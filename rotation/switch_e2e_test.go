package rotation_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/rotation"
)

// switchingBackend starts a file backend on cacerts with nextDir next whose signing root is the rotation
// controller's, once *c holds one.
func switchingBackend(t *testing.T, cacerts, next string, c *atomic.Pointer[rotation.Controller]) *file.Backend {
	t.Helper()
	b, err := file.New(context.Background(), file.Config{Dir: cacerts, NextDir: next,
		ReloadInterval: 50 * time.Millisecond, Logger: catest.DiscardLogger(),
		SigningRoot: func() *x509.Certificate {
			if ctl := c.Load(); ctl != nil {
				return ctl.SigningRoot()
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// startSwitchingMesh starts meshca with a file backend holding the next CA in nextDir and a warm rotation
// controller on a state file that switches the signing CA through it.
func startSwitchingMesh(t *testing.T, cacerts, next string, roots ...*x509.Certificate) *mesh {
	t.Helper()
	policy := &ca.Policy{TrustDomain: catest.TrustDomain}
	var ctl atomic.Pointer[rotation.Controller]
	b := switchingBackend(t, cacerts, next, &ctl)
	reg := prometheus.NewRegistry()
	c, err := rotation.New(rotation.Config{StateFile: filepath.Join(t.TempDir(), "rotation.json"),
		MaxLifetime: policy.EffectiveMaxTTL(), Manual: true, Logger: catest.DiscardLogger(), Registerer: reg,
		Started: time.Now().Add(-policy.EffectiveMaxTTL()), CASwitch: b})
	if err != nil {
		t.Fatal(err)
	}
	ctl.Store(c)
	m := catest.StartMeshca(t, catest.MeshcaOptions{Policy: policy, Observer: c.Observer(nil),
		ExtraRootsFunc: c.ExtraRoots, WithdrawnRoots: c.WithdrawnRoots, LifetimeCap: c.LifetimeCap,
		Limits: ca.Limits{PerCallerRate: -1}, Backends: []ca.NamedBackend{{Name: "file", Backend: b}}})
	return &mesh{reg: reg, m: m, c: c, roots: roots, admin: serveAdmin(t, c)}
}

// dirDigest hashes the cacerts files of dir, to show that nobody touched them.
func dirDigest(t *testing.T, dir string) [sha256.Size]byte {
	t.Helper()
	h := sha256.New()
	for _, name := range []string{file.CACertFile, file.CAKeyFile, file.CertChainFile, file.RootCertFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		h.Write(data)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// TestMeshcaSwitchesTheCAItself takes three workloads through a full rotation in which nobody touches cacerts:
// start takes the next root from nextDir, leaves come from the old CA until activated and from the new one
// from then on, through retiring and idle; a rollback from activated returns to the old CA. Afterwards the
// operator copies the new CA into cacerts and empties nextDir while workloads renew: no request fails and
// every leaf still comes from the new CA.
func TestMeshcaSwitchesTheCAItself(t *testing.T) {
	cacerts, oldCA := catest.FileCA(t)
	newCA := genCA(t)
	next := filepath.Join(t.TempDir(), "cacerts-next")
	if err := newCA.WriteDir(next); err != nil {
		t.Fatal(err)
	}
	untouched := dirDigest(t, cacerts)
	h := startSwitchingMesh(t, cacerts, next, oldCA.Root, newCA.Root)
	workloads := []string{"a", "b", "c"}
	name := map[bool]string{true: "the new root", false: "the old root"}
	renewAll := func(phase string, from *x509.Certificate, anchors ...*x509.Certificate) {
		t.Helper()
		for _, sa := range workloads {
			root, got := h.renew(t, sa)
			if !root.Equal(from) || len(got) != len(anchors) || !holds(got, anchors...) {
				t.Fatalf("%s: %s got a leaf under %s and %d anchors; want a leaf under %s and %d anchors", phase,
					sa, name[root.Equal(newCA.Root)], len(got), name[from.Equal(newCA.Root)], len(anchors))
			}
		}
	}
	advance := func(want rotation.Phase) {
		t.Helper()
		if ph, err := h.step(t, rotation.ActionAdvance); err != nil || ph != want {
			t.Fatalf("advance: %s, %v; want %s", ph, err, want)
		}
	}
	renewAll("before the rotation", oldCA.Root, oldCA.Root)
	st, err := h.admin.Change(context.Background(), rotation.ChangeRequest{Action: rotation.ActionStart,
		MaxLeafLifetime: "30m"})
	if err != nil {
		t.Fatalf("start without roots, with nextDir: %v", err)
	}
	if st.State.NextRoot != string(newCA.RootPEM) || st.State.OldRoot != string(oldCA.RootPEM) || !st.SwitchesCA {
		t.Fatal("start did not take the next root from nextDir and the old one from cacerts")
	}
	renewAll("staged", oldCA.Root, oldCA.Root)
	advance(rotation.PhasePublishing)
	renewAll("publishing", oldCA.Root, oldCA.Root, newCA.Root)
	advance(rotation.PhaseActivated)
	renewAll("activated", newCA.Root, newCA.Root, oldCA.Root)
	if ph, err := h.step(t, rotation.ActionRollback); err != nil || ph != rotation.PhasePublishing {
		t.Fatalf("rollback from activated: %s, %v", ph, err)
	}
	renewAll("rolled back to publishing", oldCA.Root, oldCA.Root, newCA.Root)
	advance(rotation.PhaseActivated)
	renewAll("activated again", newCA.Root, newCA.Root, oldCA.Root)
	advance(rotation.PhaseRetiring)
	renewAll("retiring", newCA.Root, newCA.Root)
	advance(rotation.PhaseIdle)
	renewAll("idle", newCA.Root, newCA.Root)
	if dirDigest(t, cacerts) != untouched {
		t.Fatal("cacerts changed during the rotation")
	}

	// At leisure: the new CA into cacerts, nextDir emptied, while a workload renews all the time.
	var failed, foreign atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			root, _, _, err := h.tryRenew(t, "a")
			if err != nil {
				failed.Add(1)
			} else if !root.Equal(newCA.Root) {
				foreign.Add(1)
			}
		}
	})
	if err := newCA.WriteDir(cacerts); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // a few reloads
	for _, name := range []string{file.CACertFile, file.CAKeyFile, file.CertChainFile, file.RootCertFile} {
		if err := os.Remove(filepath.Join(next, name)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || foreign.Load() != 0 {
		t.Fatalf("while cacerts took over from nextDir: %d renewals failed, %d came from the old CA",
			failed.Load(), foreign.Load())
	}
	renewAll("idle, cacerts holding the new CA and nextDir empty", newCA.Root, newCA.Root)
}

// TestStartRefusesAnUnusableNextDir: start and the advance to activated check the next CA; a missing one, one
// whose key does not match its certificate, or one that does not chain to the next root is refused with an
// error that names nextDir, and the rotation does not move.
func TestStartRefusesAnUnusableNextDir(t *testing.T) {
	oldCA, newCA, other := genCA(t), genCA(t), genCA(t)
	tests := []struct {
		name    string
		next    func(dir string) // fills nextDir after meshca started with it empty
		req     rotation.ChangeRequest
		wantErr error
		wantMsg string
	}{
		{name: "a missing nextDir is refused", next: func(string) {}, wantErr: rotation.ErrNextCA,
			wantMsg: "holds no CA"},
		{name: "a nextDir whose key does not match its certificate is refused", next: func(dir string) {
			mustWrite(t, newCA, dir)
			if err := os.WriteFile(filepath.Join(dir, file.CAKeyFile), other.KeyPEM, 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantErr: rotation.ErrNextCA, wantMsg: "does not hold the key"},
		{name: "a next root that the CA of nextDir does not chain to is refused",
			next: func(dir string) { mustWrite(t, newCA, dir) }, wantErr: rotation.ErrNextCA, wantMsg: "next root",
			req: rotation.ChangeRequest{NextRoot: string(other.RootPEM)}},
		{name: "a nextDir holding the CA in use is refused", next: func(dir string) { mustWrite(t, oldCA, dir) },
			wantErr: rotation.ErrInvalidRoot, wantMsg: "root in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cacerts := filepath.Join(t.TempDir(), "cacerts")
			mustWrite(t, oldCA, cacerts)
			next := filepath.Join(t.TempDir(), "cacerts-next")
			h := startSwitchingMesh(t, cacerts, next)
			tt.next(next)
			req := tt.req
			req.Action = rotation.ActionStart
			_, err := h.admin.Change(context.Background(), req)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("start: %v; want %v with %q", err, tt.wantErr, tt.wantMsg)
			}
			if tt.wantErr == rotation.ErrNextCA && !strings.Contains(err.Error(), "nextDir") {
				t.Fatalf("the error %q does not name nextDir", err)
			}
			if ph := h.c.State().Phase; ph != rotation.PhaseIdle {
				t.Fatalf("a refused start moved the rotation to %s", ph)
			}
		})
	}
	t.Run("a nextDir emptied before activation holds the rotation in publishing", func(t *testing.T) {
		cacerts, next := filepath.Join(t.TempDir(), "cacerts"), filepath.Join(t.TempDir(), "cacerts-next")
		mustWrite(t, oldCA, cacerts)
		mustWrite(t, newCA, next)
		h := startSwitchingMesh(t, cacerts, next)
		for _, a := range []rotation.Action{rotation.ActionStart, rotation.ActionAdvance} {
			if _, err := h.step(t, a); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.RemoveAll(next); err != nil {
			t.Fatal(err)
		}
		if _, err := h.step(t, rotation.ActionAdvance); !errors.Is(err, rotation.ErrNextCA) {
			t.Fatalf("advance to activated without a next CA: %v, want ErrNextCA", err)
		}
		if ph := h.c.State().Phase; ph != rotation.PhasePublishing {
			t.Fatalf("at %s; want publishing", ph)
		}
	})
}

func mustWrite(t *testing.T, g *file.Generated, dir string) {
	t.Helper()
	if err := g.WriteDir(dir); err != nil {
		t.Fatal(fmt.Errorf("writing %s: %w", dir, err))
	}
}

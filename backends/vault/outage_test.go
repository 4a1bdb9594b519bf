package vault_test

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/backends/vault/vaulttest"
)

// failsFast asserts that Sign, Check and CRL fail with ErrUnavailable within the backend's deadline plus a
// margin, and returns how long Sign took.
func failsFast(t *testing.T, b *vault.Backend, timeout time.Duration, what string) time.Duration {
	t.Helper()
	const margin = 500 * time.Millisecond
	start := time.Now()
	_, err := b.Sign(t.Context(), request(t, "ecdsa", testID, time.Hour))
	took := time.Since(start)
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Sign while %s: %v, want ErrUnavailable", what, err)
	}
	if took > timeout+margin {
		t.Fatalf("Sign while %s took %s, want under the %s deadline + %s", what, took, timeout, margin)
	}
	t.Logf("Sign while %s failed after %s: %v", what, took, err)
	if err := b.Check(t.Context()); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Check while %s: %v, want ErrUnavailable", what, err)
	}
	if _, err := b.CRL(t.Context()); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("CRL while %s: %v, want ErrUnavailable", what, err)
	}
	return took
}

// Vault sealed, hung, stopped and restarted under one Backend: every failure is fast and is ErrUnavailable,
// and issuance resumes without a new Backend. The server is a persistent one (file storage, unsealed by the
// harness) so that the mount, keys and meshca's token survive the restart, as they do in production; a dev
// server would come back empty.
func TestOutageAndRecovery(t *testing.T) {
	s := vaulttest.Start(t, vaulttest.Options{Persistent: true})
	t.Logf("persistent Vault at %s initialised and unsealed after %s", s.Addr, s.ReadyAfter)
	p := s.PKI(t, vaulttest.PKIOptions{})
	cfg := config(t, s, p)
	const timeout = time.Second
	cfg.Timeout = timeout
	b := newBackend(t, cfg)
	signWorks(t, b, "before the outage")
	if err := b.Check(t.Context()); err != nil {
		t.Fatalf("Check with Vault up: %v", err)
	}

	t.Run("sealed", func(t *testing.T) {
		s.Seal(t)
		failsFast(t, b, timeout, "Vault is sealed")
		s.Unseal(t)
		signWorks(t, b, "after unsealing")
	})

	t.Run("hung", func(t *testing.T) {
		// SIGSTOP: the kernel still accepts connections but Vault never answers; only the deadline ends the call.
		pid := s.PID()
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		}
		t.Cleanup(resume)
		if took := failsFast(t, b, timeout, "Vault is hung"); took < timeout/2 {
			t.Fatalf("Sign against a hung Vault returned after %s: it cannot have waited for the deadline", took)
		}
		resume()
		signWorks(t, b, "after Vault resumed")
	})

	t.Run("stopped and restarted", func(t *testing.T) {
		s.Kill()
		failsFast(t, b, timeout, "Vault is stopped")
		s.Restart(t)
		t.Logf("Vault restarted and unsealed after %s", s.ReadyAfter)
		signWorks(t, b, "after Vault restarted")
		if err := b.Check(t.Context()); err != nil {
			t.Fatalf("Check after the restart: %v", err)
		}
	})
}

// With startUnavailable, meshca can start while Vault is down: the backend answers ErrUnavailable (so the core
// fails over) and connects by itself when Vault comes up. Without it, New fails fast.
func TestStartWhileVaultIsDown(t *testing.T) {
	s := vaulttest.Start(t, vaulttest.Options{Persistent: true})
	p := s.PKI(t, vaulttest.PKIOptions{})
	cfg := config(t, s, p)
	cfg.Timeout = time.Second
	s.Kill()

	start := time.Now()
	if _, err := vault.New(t.Context(), cfg); !errors.Is(err, backends.ErrUnavailable) || time.Since(start) > cfg.Timeout {
		t.Fatalf("New with Vault down: %v after %s, want ErrUnavailable at once", err, time.Since(start))
	}

	for _, pinned := range []bool{false, true} {
		t.Run(map[bool]string{false: "roots from PEM", true: "roots pinned by fingerprint"}[pinned], func(t *testing.T) {
			c := cfg
			c.StartUnavailable = true
			if pinned {
				c.RootsPEM, c.RootFingerprints = "", []string{vault.Fingerprint(p.Root)}
			}
			b := newBackend(t, c)
			failsFast(t, b, c.Timeout, "Vault has not been reached since start")
			roots, err := b.Roots(t.Context())
			if pinned != (err != nil) {
				t.Fatalf("Roots before contact: %v, %v; want the PEM roots at once, pinned roots only after contact", roots, err)
			}
			if pinned && !errors.Is(err, backends.ErrUnavailable) {
				t.Fatalf("Roots before contact: %v, want ErrUnavailable", err)
			}
			s.Restart(t)
			t.Cleanup(s.Kill)
			deadline := time.Now().Add(20 * time.Second)
			for {
				_, err := b.Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour))
				if err == nil {
					break
				}
				if !errors.Is(err, backends.ErrUnavailable) || time.Now().After(deadline) {
					t.Fatalf("Sign after Vault came up: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if roots, err := b.Roots(t.Context()); err != nil || len(roots) != 1 || !roots[0].Equal(p.Root) {
				t.Fatalf("Roots after contact: %v, %v", roots, err)
			}
			s.Kill()
		})
	}
}

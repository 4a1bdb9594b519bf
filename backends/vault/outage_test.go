package vault_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/backends/vault/vaulttest"
)

// The outage tests give the backend a short deadline (outageTimeout) so that they can show each failure ends
// at it. The same deadline then bounds calls that must succeed, on a machine that may be busy with other
// builds and tests: a Vault that needs more than a second to answer once is not an outage. So the checks that
// Vault works again retry for a while (recovers), and only the checks that it fails are timed.
const (
	outageTimeout = time.Second
	// failMargin is how much later than the deadline a failing call may return: scheduling on a busy machine,
	// not waiting (0.46 s was seen on a 2-core machine shared with builds).
	failMargin = time.Second
	// recoverWithin bounds how long a working Vault may take to serve one request again.
	recoverWithin = 20 * time.Second
)

// timeline logs each step of an outage test with the time since the test began, so that a failure in a CI log
// shows what happened when.
type timeline struct {
	t     *testing.T
	start time.Time
}

func newTimeline(t *testing.T) *timeline { return &timeline{t: t, start: time.Now()} }

func (tl *timeline) logf(format string, args ...any) {
	tl.t.Helper()
	tl.t.Logf("t+%s: %s", time.Since(tl.start).Round(time.Millisecond), fmt.Sprintf(format, args...))
}

// failsFast asserts that Sign, Check and CRL fail with ErrUnavailable within the backend's deadline plus
// failMargin, and returns how long Sign took.
func failsFast(t *testing.T, tl *timeline, b *vault.Backend, timeout time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	_, err := b.Sign(t.Context(), request(t, "ecdsa", testID, time.Hour))
	took := time.Since(start)
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Sign while %s: %v after %s, want ErrUnavailable", what, err, took)
	}
	if took > timeout+failMargin {
		t.Fatalf("Sign while %s took %s, want under the %s deadline + %s: %v", what, took, timeout, failMargin, err)
	}
	tl.logf("Sign while %s failed after %s: %v", what, took.Round(time.Millisecond), err)
	start = time.Now()
	if err := b.Check(t.Context()); !errors.Is(err, backends.ErrUnavailable) || time.Since(start) > timeout+failMargin {
		t.Fatalf("Check while %s: %v after %s, want ErrUnavailable within %s", what, err, time.Since(start),
			timeout+failMargin)
	}
	start = time.Now()
	if _, err := b.CRL(t.Context()); !errors.Is(err, backends.ErrUnavailable) ||
		time.Since(start) > timeout+failMargin {
		t.Fatalf("CRL while %s: %v after %s, want ErrUnavailable within %s", what, err, time.Since(start),
			timeout+failMargin)
	}
	return took
}

// recovers asserts that b signs again within recoverWithin: every attempt may fail only with ErrUnavailable
// (Vault still busy), and each failure is logged with its time.
func recovers(t *testing.T, tl *timeline, b *vault.Backend, what string) {
	t.Helper()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		_, err := b.Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour))
		if err == nil {
			tl.logf("Sign %s succeeded (attempt %d, %s)", what, attempt, time.Since(start).Round(time.Millisecond))
			return
		}
		if !errors.Is(err, backends.ErrUnavailable) || time.Since(start) > recoverWithin {
			t.Fatalf("Sign %s: attempt %d after %s: %v; want a certificate within %s", what, attempt,
				time.Since(start).Round(time.Millisecond), err, recoverWithin)
		}
		tl.logf("Sign %s: attempt %d failed, retrying: %v", what, attempt, err)
		time.Sleep(100 * time.Millisecond)
	}
}

// newOutageBackend returns a backend with the outage tests' short deadline. It starts with startUnavailable,
// so that a slow first answer from a busy Vault is not a failed test; recovers then waits for it to connect.
func newOutageBackend(t *testing.T, s *vaulttest.Server, p *vaulttest.PKI) *vault.Backend {
	t.Helper()
	cfg := config(t, s, p)
	cfg.Timeout = outageTimeout
	cfg.StartUnavailable = true
	return newBackend(t, cfg)
}

// Vault sealed, hung, stopped and restarted under one Backend: every failure is fast and is ErrUnavailable,
// and issuance resumes without a new Backend. The server is a persistent one (file storage, unsealed by the
// harness) so that the mount, keys and meshca's token survive the restart, as they do in production; a dev
// server would come back empty. On failure the harness logs Vault's log tail and the backend's log.
func TestOutageAndRecovery(t *testing.T) {
	tl := newTimeline(t)
	s := vaulttest.Start(t, vaulttest.Options{Persistent: true})
	tl.logf("persistent Vault at %s (pid %d) initialised and unsealed after %s", s.Addr, s.PID(), s.ReadyAfter)
	p := s.PKI(t, vaulttest.PKIOptions{})
	b := newOutageBackend(t, s, p)
	recovers(t, tl, b, "before the outage")
	if err := b.Check(t.Context()); err != nil {
		t.Fatalf("Check with Vault up: %v", err)
	}

	t.Run("sealed", func(t *testing.T) {
		s.Seal(t)
		tl.logf("sealed")
		failsFast(t, tl, b, outageTimeout, "Vault is sealed")
		s.Unseal(t)
		tl.logf("unsealed")
		recovers(t, tl, b, "after unsealing")
	})

	t.Run("hung", func(t *testing.T) {
		// SIGSTOP: the kernel still accepts connections but Vault never answers; only the deadline ends the call.
		// Hang returns once every Vault thread has stopped: kill(2) returns earlier, and a request sent at once
		// could still be served (the test once saw Sign succeed against a "hung" Vault on a busy machine).
		resume := s.Hang(t)
		tl.logf("Vault (pid %d) stopped by SIGSTOP", s.PID())
		if took := failsFast(t, tl, b, outageTimeout, "Vault is hung"); took < outageTimeout/2 {
			t.Fatalf("Sign against a hung Vault returned after %s: it cannot have waited for the deadline", took)
		}
		resume()
		tl.logf("Vault resumed by SIGCONT")
		recovers(t, tl, b, "after Vault resumed")
	})

	t.Run("stopped and restarted", func(t *testing.T) {
		s.Kill()
		tl.logf("stopped")
		failsFast(t, tl, b, outageTimeout, "Vault is stopped")
		s.Restart(t)
		tl.logf("restarted on %s (pid %d), unsealed after %s", s.Addr, s.PID(), s.ReadyAfter)
		recovers(t, tl, b, "after Vault restarted")
		if err := b.Check(t.Context()); err != nil {
			t.Fatalf("Check after the restart: %v", err)
		}
	})
}

// With startUnavailable, meshca can start while Vault is down: the backend answers ErrUnavailable (so the core
// fails over) and connects by itself when Vault comes up. Without it, New fails fast.
func TestStartWhileVaultIsDown(t *testing.T) {
	tl := newTimeline(t)
	s := vaulttest.Start(t, vaulttest.Options{Persistent: true})
	p := s.PKI(t, vaulttest.PKIOptions{})
	cfg := config(t, s, p)
	cfg.Timeout = outageTimeout
	s.Kill()
	tl.logf("Vault at %s stopped", s.Addr)

	start := time.Now()
	if _, err := vault.New(t.Context(), cfg); !errors.Is(err, backends.ErrUnavailable) ||
		time.Since(start) > cfg.Timeout {
		t.Fatalf("New with Vault down: %v after %s, want ErrUnavailable at once", err, time.Since(start))
	}

	for _, pinned := range []bool{false, true} {
		name := map[bool]string{false: "roots from PEM", true: "roots pinned by fingerprint"}[pinned]
		t.Run(name, func(t *testing.T) {
			c := cfg
			c.StartUnavailable = true
			if pinned {
				c.RootsPEM, c.RootFingerprints = "", []string{vault.Fingerprint(p.Root)}
			}
			b := newBackend(t, c)
			failsFast(t, tl, b, c.Timeout, "Vault has not been reached since start")
			roots, err := b.Roots(t.Context())
			if pinned != (err != nil) {
				t.Fatalf("Roots before contact: %v, %v; want the PEM roots at once, pinned roots only after contact",
					roots, err)
			}
			if pinned && !errors.Is(err, backends.ErrUnavailable) {
				t.Fatalf("Roots before contact: %v, want ErrUnavailable", err)
			}
			s.Restart(t)
			t.Cleanup(s.Kill)
			tl.logf("Vault restarted (pid %d) after %s", s.PID(), s.ReadyAfter)
			recovers(t, tl, b, "after Vault came up")
			if roots, err := b.Roots(t.Context()); err != nil || len(roots) != 1 || !roots[0].Equal(p.Root) {
				t.Fatalf("Roots after contact: %v, %v", roots, err)
			}
			s.Kill()
		})
	}
}

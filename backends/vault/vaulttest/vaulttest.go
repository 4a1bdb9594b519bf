package vaulttest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/testproc"
)

// Options selects the kind of server.
type Options struct {
	// Persistent runs `vault server` with file storage instead of `vault server -dev`; the harness initialises
	// and unseals it, and its state (mounts, keys, tokens) survives Restart.
	Persistent bool
}

// Server is a running Vault on 127.0.0.1.
type Server struct {
	// Addr is the server's URL, http://127.0.0.1:<port>.
	Addr string
	// Token is the root token.
	Token string
	// ReadyAfter is how long the last start took, from exec to healthy (and unsealed).
	ReadyAfter time.Duration

	bin, dir   string
	port       int
	persistent bool
	unsealKey  string

	mu   sync.Mutex
	proc *testproc.Process
}

var seq atomic.Int64

// Start starts a Vault server and stops it when tb's test ends. When the test fails, the server's port, PID
// and the tail of its log are written to the test log.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := Launch(tb, opts)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Log(s.Describe())
		}
		s.Stop()
	})
	return s
}

// Launch starts a Vault server that outlives tb's test, for sharing across a test binary; the caller must call
// Stop (for example in TestMain after m.Run).
func Launch(tb testing.TB, opts Options) *Server {
	tb.Helper()
	bin := catest.Binary(tb, "vault")
	dir, err := os.MkdirTemp("", "meshca-vault-")
	if err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	s := &Server{bin: bin, dir: dir, persistent: opts.Persistent}
	var errs []error
	for range 3 { // a free port can be taken between FreePort and Vault's bind
		if s.port, err = testproc.FreePort(); err != nil {
			tb.Fatalf("vaulttest: %v", err)
		}
		s.Addr = fmt.Sprintf("http://127.0.0.1:%d", s.port)
		s.Token, s.unsealKey = "", ""
		err := s.start()
		if err == nil {
			return s
		}
		errs = append(errs, fmt.Errorf("port %d: %w", s.port, err))
		s.stopProcess()
		_ = os.RemoveAll(dir) // a fresh server on the next port: no half-initialised storage
		if err := os.MkdirAll(dir, 0o700); err != nil {
			tb.Fatalf("vaulttest: %v", err)
		}
	}
	tb.Fatalf("vaulttest: starting Vault failed three times: %v", errors.Join(errs...))
	return nil
}

func (s *Server) start() error {
	t0 := time.Now()
	args := []string{"server", "-log-level=warn"}
	if s.persistent {
		cfg := fmt.Sprintf(`storage "file" { path = %q }
listener "tcp" {
  address     = "127.0.0.1:%d"
  tls_disable = true
}
disable_mlock = true
api_addr      = %q
ui            = false
`, filepath.Join(s.dir, "data"), s.port, s.Addr)
		p := filepath.Join(s.dir, "vault.hcl")
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			return err
		}
		args = append(args, "-config="+p)
	} else {
		if s.Token == "" {
			s.Token = "root-" + randHex(12)
		}
		args = append(args, "-dev", "-dev-root-token-id="+s.Token,
			fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", s.port),
			"-dev-no-store-token")
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	// A clean environment: nothing from the developer's VAULT_* variables, and HOME in the temporary directory.
	cmd.Env = []string{"HOME=" + s.dir, "PATH=" + os.Getenv("PATH"), "VAULT_DISABLE_MLOCK=true"}
	proc, err := testproc.Start(cmd, filepath.Join(s.dir, "vault.log"))
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = proc
	s.mu.Unlock()

	// Vault answers at all: 501 (uninitialised) and 503 (sealed) count.
	answers := s.health(func(code int) bool { return code != 0 })
	if err := proc.WaitReady(20*time.Second, 10*time.Millisecond, answers); err != nil {
		return err
	}
	if s.persistent {
		if err := s.initAndUnseal(); err != nil {
			return err
		}
	}
	if err := s.waitActive(proc); err != nil {
		return err
	}
	if err := s.checkOurs(proc); err != nil {
		return err
	}
	s.ReadyAfter = time.Since(t0)
	return nil
}

// health returns a probe that asks /v1/sys/health and accepts the status codes ok accepts.
func (s *Server) health(ok func(code int) bool) func() error {
	hc := &http.Client{Timeout: time.Second}
	return func() error {
		resp, err := hc.Get(s.Addr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if !ok(resp.StatusCode) {
			return fmt.Errorf("/v1/sys/health answered %d", resp.StatusCode)
		}
		return nil
	}
}

// waitActive polls /v1/sys/health until Vault is initialised, unsealed and active (200).
func (s *Server) waitActive(proc *testproc.Process) error {
	active := s.health(func(code int) bool { return code == http.StatusOK })
	return proc.WaitReady(20*time.Second, 10*time.Millisecond, active)
}

// checkOurs makes sure that the Vault answering on the port is the process just started: if another process
// took the port between FreePort and Vault's bind, our Vault exits with "address already in use" while the
// probes above reach the other server. Only our server knows our root token.
func (s *Server) checkOurs(proc *testproc.Process) error {
	c, err := s.newClient(s.Token)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		return fmt.Errorf("the Vault on port %d does not know this server's root token, so it is another process "+
			"(pid %d exited: %v): %w; log:\n%s", s.port, proc.PID(), proc.ExitError(), err, proc.LogTail(2000))
	}
	select {
	case <-proc.Exited():
		return fmt.Errorf("vault (pid %d) exited after it answered: %v; log:\n%s", proc.PID(), proc.ExitError(),
			proc.LogTail(2000))
	default:
	}
	return nil
}

func (s *Server) initAndUnseal() error {
	c, err := s.newClient("")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Sys().InitStatusWithContext(ctx)
	if err != nil {
		return fmt.Errorf("init status: %w", err)
	}
	switch {
	case !st && s.unsealKey != "":
		return fmt.Errorf("the Vault on port %d is not initialised although this server was: another process "+
			"holds the port", s.port)
	case st && s.unsealKey == "":
		return fmt.Errorf("the Vault on port %d is already initialised although this server is new: another "+
			"process holds the port", s.port)
	case !st:
		resp, err := c.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		s.unsealKey, s.Token = resp.KeysB64[0], resp.RootToken
	}
	if _, err := c.Sys().UnsealWithContext(ctx, s.unsealKey); err != nil {
		return fmt.Errorf("unseal: %w", err)
	}
	return nil
}

// Stop stops the server by PID (SIGTERM, then SIGKILL after 10 s) and removes its directory. It is idempotent.
func (s *Server) Stop() {
	s.stopProcess()
	_ = os.RemoveAll(s.dir)
}

func (s *Server) stopProcess() {
	s.mu.Lock()
	proc := s.proc
	s.proc = nil
	s.mu.Unlock()
	if proc != nil {
		_ = proc.Stop(10 * time.Second)
	}
}

// Restart stops the server and starts it again on the same port. A persistent server is unsealed again and
// keeps its state; a dev server comes back empty with the same root token. When the start fails (the port may
// be held for a moment by another process), it is tried twice more.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.stopProcess()
	var errs []error
	for attempt := range 3 {
		err := s.start()
		if err == nil {
			return
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt+1, err))
		s.stopProcess()
		time.Sleep(200 * time.Millisecond)
	}
	tb.Fatalf("vaulttest: restarting Vault on port %d: %v", s.port, errors.Join(errs...))
}

// Hang stops the server process as a hung Vault (SIGSTOP: the kernel still accepts connections, nothing
// answers) and returns once no thread of it runs any more, so that a request sent next cannot be served. resume
// continues the process; it also runs when the test ends.
func (s *Server) Hang(tb testing.TB) (resume func()) {
	tb.Helper()
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc == nil {
		tb.Fatalf("vaulttest: Hang: the server is stopped")
	}
	var once sync.Once
	resume = func() { once.Do(func() { _ = proc.Resume() }) }
	tb.Cleanup(resume)
	if err := proc.Suspend(10 * time.Second); err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	return resume
}

// Kill stops the server process (as Stop) but keeps a persistent server's data for Restart.
func (s *Server) Kill() { s.stopProcess() }

// Seal seals the server; Unseal (persistent servers only) opens it again.
func (s *Server) Seal(tb testing.TB) {
	tb.Helper()
	if err := s.Client(tb).Sys().Seal(); err != nil {
		tb.Fatalf("vaulttest: sealing: %v", err)
	}
}

// Unseal unseals a persistent server sealed by Seal and waits until it is active.
func (s *Server) Unseal(tb testing.TB) {
	tb.Helper()
	if !s.persistent {
		tb.Fatalf("vaulttest: a dev server cannot be unsealed by the harness; use Options{Persistent: true}")
	}
	t0 := time.Now()
	if err := s.initAndUnseal(); err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc == nil {
		tb.Fatalf("vaulttest: Unseal: the server is stopped")
	}
	if err := s.waitActive(proc); err != nil {
		tb.Fatalf("vaulttest: unsealed, but not active: %v", err)
	}
	tb.Logf("vaulttest: unsealed and active after %s", time.Since(t0).Round(time.Millisecond))
}

// PID returns the server's process ID, or 0 when it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.PID()
}

// Client returns a client authenticated with the root token, taking nothing from the environment.
func (s *Server) Client(tb testing.TB) *api.Client {
	tb.Helper()
	c, err := s.newClient(s.Token)
	if err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	return c
}

func (s *Server) newClient(token string) (*api.Client, error) {
	c, err := api.NewClient(&api.Config{Address: s.Addr, HttpClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		return nil, err
	}
	c.ClearNamespace()
	c.SetToken(token)
	return c, nil
}

// Write writes data to path with the root token and fails the test on error.
func (s *Server) Write(tb testing.TB, path string, data map[string]any) *api.Secret {
	tb.Helper()
	sec, err := s.Client(tb).Logical().Write(path, data)
	if err != nil {
		tb.Fatalf("vaulttest: writing %s: %v", path, err)
	}
	return sec
}

// Read reads path with the root token and fails the test on error or when nothing is there.
func (s *Server) Read(tb testing.TB, path string) *api.Secret {
	tb.Helper()
	sec, err := s.Client(tb).Logical().Read(path)
	if err != nil || sec == nil {
		tb.Fatalf("vaulttest: reading %s: %v (secret %v)", path, err, sec)
	}
	return sec
}

// Log returns the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "vault.log"))
	return string(b)
}

// Describe says which server this is and how it is doing, with the tail of its log: for failure messages.
func (s *Server) Describe() string {
	state := "stopped"
	if pid := s.PID(); pid != 0 {
		state = fmt.Sprintf("pid %d", pid)
	}
	l := s.Log()
	if len(l) > 3000 {
		l = "…" + l[len(l)-3000:]
	}
	return fmt.Sprintf("vaulttest: Vault at %s (%s, persistent=%v, last start took %s); its log:\n%s", s.Addr, state,
		s.persistent, s.ReadyAfter.Round(time.Millisecond), strings.TrimSpace(l))
}

// Unique returns a name not used before in this process, for mounts and roles.
func Unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ParsePEM parses one PEM certificate and fails the test otherwise.
func ParsePEM(tb testing.TB, s string) *x509.Certificate {
	tb.Helper()
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		tb.Fatalf("vaulttest: no PEM in %q", s)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	return c
}

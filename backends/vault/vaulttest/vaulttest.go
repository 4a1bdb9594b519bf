// Package vaulttest starts a real HashiCorp Vault server on loopback for tests and configures it: PKI mounts
// with a root and an intermediate CA, roles, policies, AppRole and JWT auth.
//
// The Vault binary comes from catest.Binary (built once by scripts/get-vault.sh and cached outside the clone),
// so every helper skips under -short. A server is either a dev server (in memory, ready in a fraction of a
// second, state lost on restart) or a persistent one (file storage, initialised and unsealed by the harness,
// state kept across Restart).
package vaulttest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/meshca/meshca/ca/catest"
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

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

var seq atomic.Int64

// Start starts a Vault server and stops it when tb's test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := Launch(tb, opts)
	tb.Cleanup(s.Stop)
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
	var lastErr error
	for range 3 { // a free port can be taken between FreePort and Vault's bind
		s.port = catest.FreePort(tb)
		s.Addr = fmt.Sprintf("http://127.0.0.1:%d", s.port)
		if lastErr = s.start(); lastErr == nil {
			return s
		}
		s.Stop()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			tb.Fatalf("vaulttest: %v", err)
		}
	}
	tb.Fatalf("vaulttest: starting Vault: %v", lastErr)
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
		args = append(args, "-dev", "-dev-root-token-id="+s.Token, fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", s.port),
			"-dev-no-store-token")
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "vault.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	// A clean environment: nothing from the developer's VAULT_* variables, and HOME in the temporary directory.
	cmd.Env = []string{"HOME=" + s.dir, "PATH=" + os.Getenv("PATH"), "VAULT_DISABLE_MLOCK=true"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	if err := s.waitListening(exited, 20*time.Second); err != nil {
		return err
	}
	if s.persistent {
		if err := s.initAndUnseal(); err != nil {
			return err
		}
	}
	if err := s.waitActive(exited, 20*time.Second); err != nil {
		return err
	}
	s.ReadyAfter = time.Since(t0)
	return nil
}

// waitListening polls /v1/sys/health until Vault answers at all (501 uninitialised and 503 sealed count).
func (s *Server) waitListening(exited chan struct{}, limit time.Duration) error {
	return s.poll(exited, limit, func(code int) bool { return code != 0 })
}

// waitActive polls /v1/sys/health until Vault is initialised, unsealed and active (200).
func (s *Server) waitActive(exited chan struct{}, limit time.Duration) error {
	return s.poll(exited, limit, func(code int) bool { return code == http.StatusOK })
}

func (s *Server) poll(exited chan struct{}, limit time.Duration, ok func(code int) bool) error {
	deadline := time.Now().Add(limit)
	hc := &http.Client{Timeout: time.Second}
	for {
		code := 0
		if resp, err := hc.Get(s.Addr + "/v1/sys/health"); err == nil {
			code = resp.StatusCode
			resp.Body.Close()
		}
		if ok(code) {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("vault exited during start: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault not ready after %s (last /v1/sys/health status %d): %s", limit, code, s.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	if !st {
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
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart stops the server and starts it again on the same port. A persistent server is unsealed again and
// keeps its state; a dev server comes back empty with the same root token.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.stopProcess()
	if err := s.start(); err != nil {
		tb.Fatalf("vaulttest: restarting Vault on port %d: %v", s.port, err)
	}
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
	if err := s.initAndUnseal(); err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if err := s.waitActive(exited, 20*time.Second); err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
}

// PID returns the server's process ID, or 0 when it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
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

func (s *Server) logTail() string {
	l := s.Log()
	if len(l) > 2000 {
		l = l[len(l)-2000:]
	}
	return strings.TrimSpace(l)
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

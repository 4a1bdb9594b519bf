package vault_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/backends/vault/vaulttest"
	"github.com/meshca/meshca/ca/catest"
)

// One dev Vault serves the whole test binary; each test configures its own PKI mount on it. Tests that stop or
// seal Vault start their own persistent server.
var shared struct {
	once sync.Once
	srv  *vaulttest.Server
}

func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }

// devVault returns the shared dev Vault, starting it on first use. It skips under -short.
func devVault(t testing.TB) *vaulttest.Server {
	t.Helper()
	catest.Binary(t, "vault") // skips under -short, in every test (a skip inside once.Do would stick)
	shared.once.Do(func() {
		shared.srv = vaulttest.Launch(t, vaulttest.Options{})
		catest.AtExit(shared.srv.Stop)
		t.Logf("dev Vault at %s ready after %s", shared.srv.Addr, shared.srv.ReadyAfter)
	})
	if shared.srv == nil {
		t.Fatal("the shared Vault failed to start in an earlier test")
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(shared.srv.Describe())
		}
	})
	return shared.srv
}

// config returns a backend configuration for p on s that logs in with a token holding p's policy.
func config(t testing.TB, s *vaulttest.Server, p *vaulttest.PKI) vault.Config {
	t.Helper()
	token := vault.Secret(s.CreateToken(t, time.Hour, true, p.Policy))
	return vault.Config{
		Address:  s.Addr,
		Mount:    p.Mount,
		Role:     p.Role,
		RootsPEM: p.RootPEM,
		Timeout:  2 * time.Second,
		Auth:     vault.AuthConfig{Method: vault.AuthToken, Token: token},
		Logger:   testLogger(t, nil),
	}
}

func newBackend(t testing.TB, cfg vault.Config) *vault.Backend {
	t.Helper()
	b, err := vault.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// logBuffer collects a backend's structured logs for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// testLogger returns a JSON logger that writes to buf when given, and to the test log on failure otherwise.
func testLogger(t testing.TB, buf *logBuffer) *slog.Logger {
	if buf == nil {
		buf = &logBuffer{}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("backend log:\n%s", buf.String())
			}
		})
	}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newKey returns a fresh key of the given kind: "ecdsa" (P-256) or "rsa" (2048 bits).
func newKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "ecdsa":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCSR returns a parsed CSR for key asking for uris, with the subject istio-agent sends.
func newCSR(t testing.TB, key crypto.Signer, uris ...string) *x509.CertificateRequest {
	t.Helper()
	return newCSRWith(t, key, uris, nil, nil)
}

// newCSRWith returns a parsed CSR for key asking for the given SANs, with the subject istio-agent sends.
func newCSRWith(t testing.TB, key crypto.Signer, uris, dns []string, ips []net.IP) *x509.CertificateRequest {
	t.Helper()
	return newCSRFrom(t, key, &x509.CertificateRequest{Subject: pkix.Name{Organization: []string{"cluster.local"}},
		DNSNames: dns, IPAddresses: ips}, uris)
}

// newCSRWithSubject returns a parsed CSR for key with the given subject and URI SANs.
func newCSRWithSubject(t testing.TB, key crypto.Signer, subject pkix.Name, uris ...string) *x509.CertificateRequest {
	t.Helper()
	return newCSRFrom(t, key, &x509.CertificateRequest{Subject: subject}, uris)
}

func newCSRFrom(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest, uris []string,
) *x509.CertificateRequest {
	t.Helper()
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// request returns a SignRequest for a fresh key of kind with the SPIFFE ID id.
func request(t testing.TB, kind, id string, ttl time.Duration) *backends.SignRequest {
	t.Helper()
	key := newKey(t, kind)
	c := newCSR(t, key, id)
	u, _ := url.Parse(id)
	return &backends.SignRequest{CSR: c, PublicKey: c.PublicKey, URIs: []*url.URL{u}, TTL: ttl}
}

// verifyChain checks chain against root the way a relying party does.
func verifyChain(t testing.TB, chain []*x509.Certificate, root *x509.Certificate) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range chain[1 : len(chain)-1] {
		inter.AddCert(c)
	}
	if !chain[len(chain)-1].Equal(root) {
		t.Fatalf("chain ends with %q, want the root %q", chain[len(chain)-1].Subject, root.Subject)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("chain does not verify to the root: %v", err)
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

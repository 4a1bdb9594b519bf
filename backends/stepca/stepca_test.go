package stepca_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/stepca"
	"github.com/meshca/meshca/backends/stepca/stepcatest"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
)

// shared is one step-ca for every test that does not stop it; TestMain stops it.
var shared struct {
	once sync.Once
	dir  string
	srv  *stepcatest.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// sharedServer returns the step-ca shared by this test binary, starting it on first use.
func sharedServer(tb testing.TB) *stepcatest.Server {
	tb.Helper()
	bin := catest.Binary(tb, "step-ca") // skips under -short
	shared.once.Do(func() {
		if shared.dir, shared.err = os.MkdirTemp("", "meshca-stepca-"); shared.err != nil {
			return
		}
		shared.srv, shared.err = stepcatest.Launch(bin, shared.dir, stepcatest.Options{})
		if shared.err == nil {
			tb.Logf("step-ca started in %s", shared.srv.StartupTime)
		}
	})
	if shared.err != nil {
		tb.Fatalf("starting the shared step-ca: %v", shared.err)
	}
	return shared.srv
}

// quietLogger keeps the backend's logs out of test output unless -v is given.
func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func jwkConfig(s *stepcatest.Server) stepca.Config {
	jwk := &stepca.JWKConfig{Provisioner: s.JWK.Name, KeyFile: s.JWK.KeyFile, PasswordFile: s.JWK.PasswordFile}
	return stepca.Config{
		URL:             s.URL,
		RootFingerprint: s.RootFingerprint,
		JWK:             jwk,
		Timeout:         3 * time.Second,
		Logger:          quietLogger(),
	}
}

func x5cConfig(s *stepcatest.Server) stepca.Config {
	return stepca.Config{
		URL:       s.URL,
		RootsFile: s.RootsFile,
		X5C:       &stepca.X5CConfig{Provisioner: s.X5C.Name, CertFile: s.X5C.CertFile, KeyFile: s.X5C.KeyFile},
		Timeout:   3 * time.Second,
		Logger:    quietLogger(),
	}
}

func newBackend(tb testing.TB, cfg stepca.Config) *stepca.Backend {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := stepca.New(ctx, cfg)
	if err != nil {
		tb.Fatalf("stepca.New: %v", err)
	}
	return b
}

// keyTypes are the CSR keys istio-agent sends: ECDSA P-256 and RSA-2048 (its default).
var keyTypes = []struct {
	name string
	gen  func() (crypto.Signer, error)
}{
	{"ECDSA-P256", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
	{"RSA-2048", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }},
}

// signRequest builds what the core hands a backend: an Istio-shaped CSR (subject O=, one URI SAN) for id.
func signRequest(tb testing.TB, key crypto.Signer, id string, ttl time.Duration) *backends.SignRequest {
	tb.Helper()
	u, err := url.Parse(id)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{Organization: []string{"cluster.local"}},
		URIs:    []*url.URL{u},
	}, key)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := csr.ParseRaw(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &backends.SignRequest{CSR: r.CSR, PublicKey: r.PublicKey, URIs: []*url.URL{u}, TTL: ttl}
}

func ecKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestSignIssuesExactIdentityTTLAndChain(t *testing.T) {
	srv := sharedServer(t)
	provisioners := []struct {
		name string
		cfg  stepca.Config
	}{
		{"JWK provisioner, root pinned by fingerprint", jwkConfig(srv)},
		{"X5C provisioner, roots from a PEM file", x5cConfig(srv)},
	}
	for _, p := range provisioners {
		b := newBackend(t, p.cfg)
		for _, kt := range keyTypes {
			t.Run(p.name+"/"+kt.name, func(t *testing.T) {
				key, err := kt.gen()
				if err != nil {
					t.Fatal(err)
				}
				id := "spiffe://cluster.local/ns/payments/sa/api-" + strings.ToLower(kt.name[:3])
				req := signRequest(t, key, id, time.Hour)
				before := time.Now().Truncate(time.Second)
				resp, err := b.Sign(context.Background(), req)
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				leaf := resp.Leaf()
				if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id {
					t.Errorf("URI SANs = %v, want exactly [%s]", leaf.URIs, id)
				}
				if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
					t.Errorf("extra SANs: DNS %v IP %v email %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
				}
				if len(leaf.Subject.Names) != 0 {
					t.Errorf("subject = %q, want empty (the CSR's O= must not be copied)", leaf.Subject)
				}
				if got := leaf.NotAfter.Sub(leaf.NotBefore); got != time.Hour {
					t.Errorf("validity = %s, want exactly the 1h TTL", got)
				}
				if leaf.NotBefore.After(before) || leaf.NotBefore.Before(before.Add(-time.Minute)) {
					t.Errorf("NotBefore = %s, want within a minute before %s", leaf.NotBefore, before)
				}
				if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
					t.Error("leaf certifies another key")
				}
				for _, ext := range leaf.Extensions { // disableSmallstepExtensions
					if ext.Id.String() == "1.3.6.1.4.1.37476.9000.64.1" {
						t.Error("leaf carries smallstep's provisioner extension")
					}
				}
				if len(resp.Chain) != 3 || !resp.Chain[1].Equal(srv.Intermediate) || !resp.Chain[2].Equal(srv.Root) {
					t.Fatalf("chain has %d certificates, want leaf, step-ca's intermediate, root", len(resp.Chain))
				}
				roots := x509.NewCertPool()
				roots.AddCert(srv.Root)
				inter := x509.NewCertPool()
				inter.AddCert(resp.Chain[1])
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Errorf("leaf does not verify to step-ca's root as a client certificate: %v", err)
				}
			})
		}
	}
}

func TestSignX5CCapsTTLAtCredentialExpiry(t *testing.T) {
	srv := sharedServer(t)
	b := newBackend(t, x5cConfig(srv))
	// The credential lives 2h; a 24h certificate would outlive it and step-ca would refuse it.
	resp, err := b.Sign(context.Background(),
		signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", 24*time.Hour))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if got, want := resp.Leaf().NotAfter, srv.X5C.NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %s, want the credential's expiry %s", got, want)
	}
}

// TestSignX5CNeverStartsBeforeTheCredential: backdating NotBefore to before the credential's own NotBefore
// (just after a rotation) would be refused by step-ca; the backend backdates less instead.
func TestSignX5CNeverStartsBeforeTheCredential(t *testing.T) {
	srv := sharedServer(t)
	cfg := x5cConfig(srv)
	cfg.Backdate = 10 * time.Minute // the harness's credential started a minute before step-ca
	b := newBackend(t, cfg)
	resp, err := b.Sign(context.Background(), signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", time.Hour))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if got := resp.Leaf().NotBefore; !got.Equal(srv.X5C.NotBefore) {
		t.Errorf("NotBefore = %s, want the credential's NotBefore %s", got, srv.X5C.NotBefore)
	}
}

func TestSignErrors(t *testing.T) {
	srv := sharedServer(t)
	b := newBackend(t, jwkConfig(srv))
	tests := []struct {
		name string
		req  func(t *testing.T) *backends.SignRequest
		want error
	}{{
		name: "step-ca's name policy refuses another trust domain",
		req: func(t *testing.T) *backends.SignRequest {
			return signRequest(t, ecKey(t), "spiffe://evil.example/ns/a/sa/b", time.Hour)
		},
		want: backends.ErrRefused,
	}, {
		name: "step-ca's claims refuse a TTL over 24h",
		req: func(t *testing.T) *backends.SignRequest {
			return signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", 48*time.Hour)
		},
		want: backends.ErrRefused,
	}, {
		name: "a URI SAN that is not a Kubernetes SPIFFE ID is refused by the backend",
		req: func(t *testing.T) *backends.SignRequest {
			return signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b/extra", time.Hour)
		},
		want: csr.ErrInvalidID,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.Sign(context.Background(), tt.req(t))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Sign error = %v, want %v", err, tt.want)
			}
			if errors.Is(err, backends.ErrUnavailable) {
				t.Errorf("a refusal must not read as unavailable (the core would fail over): %v", err)
			}
		})
	}
}

func TestTokenReplayIsRefusedByStepCA(t *testing.T) {
	srv := sharedServer(t)
	for _, cfg := range []stepca.Config{jwkConfig(srv), x5cConfig(srv)} {
		b := &stepca.Replayer{Backend: newBackend(t, cfg)} // every request after the first replays the first token
		req := signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/replay", time.Hour)
		if _, err := b.Sign(context.Background(), req); err != nil {
			t.Fatalf("first Sign: %v", err)
		}
		_, err := b.Sign(context.Background(), req)
		if !errors.Is(err, stepca.ErrUnauthorized) {
			t.Fatalf("replayed token: error = %v, want ErrUnauthorized", err)
		}
		if errors.Is(err, backends.ErrUnavailable) || errors.Is(err, backends.ErrRefused) {
			t.Errorf("a replayed token is meshca's fault, neither unavailable nor refused: %v", err)
		}
		t.Logf("replay surfaced as: %v", err)
		// docs/stepca.md warns operators that step-ca's log holds whole tokens; keep that warning true.
		if !strings.Contains(srv.Log(), b.FirstToken()) {
			t.Error("step-ca's log no longer holds the token; update the warning in docs/stepca.md")
		}
	}
}

func TestRevokedCertificateAppearsInCRL(t *testing.T) {
	srv := sharedServer(t)
	for _, cfg := range []stepca.Config{jwkConfig(srv), x5cConfig(srv)} {
		b := newBackend(t, cfg)
		ctx := context.Background()
		resp, err := b.Sign(ctx, signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/revoked", time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		serial := resp.Leaf().SerialNumber
		if err := b.Revoke(ctx, &backends.RevokeRequest{SerialNumber: serial, Reason: 1}); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		der, err := b.CRL(ctx)
		if err != nil {
			t.Fatalf("CRL: %v", err)
		}
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := rl.CheckSignatureFrom(srv.Intermediate); err != nil {
			t.Errorf("CRL is not signed by step-ca's intermediate: %v", err)
		}
		found := false
		for _, e := range rl.RevokedCertificateEntries {
			found = found || e.SerialNumber.Cmp(serial) == 0
		}
		if !found {
			t.Errorf("serial %s is not in step-ca's CRL (%d entries)", serial, len(rl.RevokedCertificateEntries))
		}
	}
}

func TestRootsChainAndCheck(t *testing.T) {
	srv := sharedServer(t)
	b := newBackend(t, jwkConfig(srv))
	ctx := context.Background()
	roots, err := b.Roots(ctx)
	if err != nil || len(roots) != 1 || !roots[0].Equal(srv.Root) {
		t.Fatalf("Roots = %d certificates, %v; want step-ca's root", len(roots), err)
	}
	chain, err := b.CAChain(ctx)
	if err != nil || len(chain) != 2 || !chain[0].Equal(srv.Intermediate) || !chain[1].Equal(srv.Root) {
		t.Fatalf("CAChain = %d certificates, %v; want intermediate, root", len(chain), err)
	}
	if err := b.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestNewRefusesWrongFingerprint(t *testing.T) {
	srv := sharedServer(t)
	cfg := jwkConfig(srv)
	cfg.RootFingerprint = "00" + srv.RootFingerprint[2:]
	_, err := stepca.New(context.Background(), cfg)
	if !errors.Is(err, backends.ErrBadChain) {
		t.Fatalf("New with a wrong fingerprint: error = %v, want ErrBadChain", err)
	}
}

func TestServerNotMatchingThePinnedRootsIsNotTrusted(t *testing.T) {
	srv := sharedServer(t)
	other := stepcatest.Start(t, stepcatest.Options{}) // another CA: its roots file pins the wrong step-ca
	cfg := x5cConfig(srv)
	cfg.RootsFile = other.RootsFile
	b := newBackend(t, cfg)
	_, err := b.Sign(context.Background(), signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", time.Hour))
	if !errors.Is(err, backends.ErrBadChain) || !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Sign = %v, want ErrBadChain and ErrUnavailable (the core fails over, the operator fixes pinning)",
			err)
	}
}

func TestJWKKeyForms(t *testing.T) {
	srv := sharedServer(t)
	tests := []struct {
		name    string
		jwk     stepca.JWKConfig
		getenv  func(string) string
		wantErr bool
	}{
		{name: "encrypted JWE with a password file",
			jwk: stepca.JWKConfig{KeyFile: srv.JWK.KeyFile, PasswordFile: srv.JWK.PasswordFile}},
		{name: "encrypted JWE with a password in the environment",
			jwk:    stepca.JWKConfig{KeyFile: srv.JWK.KeyFile, PasswordEnv: "PW"},
			getenv: func(string) string { b, _ := os.ReadFile(srv.JWK.PasswordFile); return string(b[:len(b)-1]) }},
		{name: "plain private JWK", jwk: stepca.JWKConfig{KeyFile: srv.JWK.PlainKeyFile}},
		{name: "encrypted JWE with a wrong password",
			jwk:    stepca.JWKConfig{KeyFile: srv.JWK.KeyFile, PasswordEnv: "PW"},
			getenv: func(string) string { return "wrong" }, wantErr: true},
		{name: "encrypted JWE without a password", jwk: stepca.JWKConfig{KeyFile: srv.JWK.KeyFile}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := jwkConfig(srv)
			tt.jwk.Provisioner = srv.JWK.Name
			cfg.JWK, cfg.Getenv = &tt.jwk, tt.getenv
			b, err := stepca.New(context.Background(), cfg)
			if tt.wantErr {
				if err == nil {
					t.Fatal("New succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			req := signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", time.Hour)
			if _, err := b.Sign(context.Background(), req); err != nil {
				t.Fatalf("Sign: %v", err)
			}
		})
	}
}

package vault_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/vault/vaulttest"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/devtoken"
)

// newIssuer returns meshca's issuance core over b, trusting dev service-account tokens.
func newIssuer(tb testing.TB, b backends.Backend) (*ca.Issuer, *devtoken.Minter) {
	tb.Helper()
	dev, err := devtoken.Generate("")
	if err != nil {
		tb.Fatal(err)
	}
	jwt, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	iss, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "vault", Backend: b}}, Authenticator: jwt,
		Policy: ca.Policy{TrustDomain: catest.TrustDomain}, Logger: catest.DiscardLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	return iss, dev
}

// The whole request path against a real Vault, including meshca's serving certificate: istio-agent's gRPC call
// with a service-account JWT, meshca's authentication, CSR checks and policy, the Vault backend, and back; then
// a revocation in Vault appears in the CRL meshca publishes, and a stopped Vault is codes.Unavailable, fast.
func TestEndToEndGRPCWithVault(t *testing.T) {
	s := vaulttest.Start(t, vaulttest.Options{}) // its own server: this test stops it
	p := s.PKI(t, vaulttest.PKIOptions{Role: map[string]any{"allow_localhost": true, "allow_ip_sans": true}})
	cfg := config(t, s, p)
	cfg.Timeout = time.Second
	b := newBackend(t, cfg)
	// meshca issues its own serving certificate through Vault too (a CSR with localhost and 127.0.0.1).
	m := catest.StartMeshca(t, catest.MeshcaOptions{Backends: []ca.NamedBackend{{Name: "vault", Backend: b}},
		Server: server.Config{CRL: b.CRL}, Logger: testLogger(t, nil)})
	conn := m.Dial(t)
	tok := m.Token(t, "default", "bookinfo")
	csrPEM, _ := catest.WorkloadCSR(t, testID)
	call := func() (*pb.IstioCertificateResponse, error) {
		authCtx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+tok)
		cctx, ccancel := context.WithTimeout(authCtx, 10*time.Second)
		defer ccancel()
		return pb.NewIstioCertificateServiceClient(conn).CreateCertificate(cctx,
			&pb.IstioCertificateRequest{Csr: string(csrPEM), ValidityDuration: 3600})
	}
	resp, err := call()
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	var chain []*x509.Certificate
	for _, s := range resp.CertChain {
		blk, _ := pem.Decode([]byte(s))
		if blk == nil {
			t.Fatalf("cert_chain entry is not PEM: %q", s)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	if len(chain) != 3 || !chain[1].Equal(p.Intermediate) {
		t.Fatalf("cert_chain has %d certificates, want leaf, Vault's intermediate, root", len(chain))
	}
	verifyChain(t, chain, p.Root)
	if got := chain[0].URIs; len(got) != 1 || got[0].String() != testID {
		t.Fatalf("leaf URI SANs %v, want %s", got, testID)
	}

	// Revoke in Vault; meshca's /crl serves Vault's CRL with the serial.
	if err := b.Revoke(t.Context(), &backends.RevokeRequest{Certificate: chain[0]}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	hr, err := http.Get("http://" + m.HTTPAddr + "/crl")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("meshca /crl: HTTP %d, %v", hr.StatusCode, err)
	}
	found := false
	for _, e := range rl.RevokedCertificateEntries {
		found = found || e.SerialNumber.Cmp(chain[0].SerialNumber) == 0
	}
	if !found || rl.CheckSignatureFrom(p.Intermediate) != nil {
		t.Fatalf("meshca's /crl does not list the revoked serial %x (or is not Vault's)", chain[0].SerialNumber)
	}

	// Vault goes away: the agent gets Unavailable (which it retries), within the backend deadline.
	s.Kill()
	start := time.Now()
	_, err = call()
	took := time.Since(start)
	if status.Code(err) != codes.Unavailable || took > cfg.Timeout+time.Second {
		t.Fatalf("CreateCertificate with Vault stopped: %v after %s, want Unavailable within %s", err, took,
			cfg.Timeout+time.Second)
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "127.0.0.1:") {
		t.Fatalf("status leaks the inner error: %v", err)
	}
	t.Logf("CreateCertificate with Vault stopped: %s after %s", status.Code(err), took)
}

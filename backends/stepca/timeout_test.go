package stepca_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/stepca"
	"github.com/meshca/meshca/csr"
)

// hungStepCA is a listener that accepts connections and never answers, as a wedged step-ca or a
// black-holing proxy would. It counts the connections it accepted.
type hungStepCA struct {
	url      string
	accepted atomic.Int32
}

func newHungStepCA(t *testing.T) *hungStepCA {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	h := &hungStepCA{url: "https://127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.accepted.Add(1)
			t.Cleanup(func() { c.Close() })
		}
	}()
	return h
}

// offlineBackend returns a Backend for url with a JWK provisioner key and a roots file, so that New needs
// nothing from the server, and that key.
func offlineBackend(t *testing.T, url string, timeout time.Duration) (*stepca.Backend, crypto.Signer) {
	t.Helper()
	key := ecKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	roots, jwk := filepath.Join(dir, "roots.pem"), filepath.Join(dir, "jwk.json")
	if err := os.WriteFile(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	jwkJSON, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: "k", Algorithm: string(jose.ES256)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jwk, jwkJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := stepca.New(context.Background(), stepca.Config{
		URL:       url,
		RootsFile: roots,
		JWK:       &stepca.JWKConfig{Provisioner: "p", KeyFile: jwk},
		Timeout:   timeout,
		Logger:    quietLogger(),
	})
	if err != nil {
		t.Fatalf("New must succeed while step-ca does not answer: %v", err)
	}
	return b, key
}

// TestCallsEndAtTheDeadlineWhenStepCAHangs: every call to a step-ca that never answers ends at the configured
// timeout (not before: it did wait for step-ca; not much after) with ErrUnavailable.
func TestCallsEndAtTheDeadlineWhenStepCAHangs(t *testing.T) {
	const timeout = 300 * time.Millisecond
	hung := newHungStepCA(t)
	b, key := offlineBackend(t, hung.url, timeout)
	calls := map[string]func(context.Context) error{
		"Sign": func(ctx context.Context) error {
			_, err := b.Sign(ctx, signRequest(t, key, "spiffe://cluster.local/ns/a/sa/b", time.Hour))
			return err
		},
		"Roots": func(ctx context.Context) error { _, err := b.Roots(ctx); return err },
		"Check": b.Check,
		"CRL":   func(ctx context.Context) error { _, err := b.CRL(ctx); return err },
	}
	for name, call := range calls {
		before := hung.accepted.Load()
		start := time.Now()
		err := call(context.Background())
		elapsed := time.Since(start)
		if !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("%s = %v, want ErrUnavailable", name, err)
		}
		if elapsed < timeout*9/10 {
			t.Errorf("%s returned after %s, before the %s timeout: it cannot have waited for step-ca", name,
				elapsed, timeout)
		}
		if elapsed > timeout+500*time.Millisecond {
			t.Errorf("%s took %s, want about the %s timeout", name, elapsed, timeout)
		}
		if hung.accepted.Load() == before {
			t.Errorf("%s never connected to step-ca", name)
		}
	}
}

// TestRequestsStepCACannotSignAreRefusedBeforeSending: a request step-ca could not sign as asked is refused
// with ErrRefused without a connection to step-ca.
func TestRequestsStepCACannotSignAreRefusedBeforeSending(t *testing.T) {
	hung := newHungStepCA(t)
	b, key := offlineBackend(t, hung.url, 300*time.Millisecond)
	const id = "spiffe://cluster.local/ns/a/sa/b"
	mod := func(f func(r *backends.SignRequest)) func(t *testing.T) *backends.SignRequest {
		return func(t *testing.T) *backends.SignRequest {
			r := signRequest(t, key, id, time.Hour)
			f(r)
			return r
		}
	}
	other, _ := url.Parse("spiffe://cluster.local/ns/a/sa/other")
	tests := []struct {
		name    string
		req     func(t *testing.T) *backends.SignRequest
		andWant error
	}{
		{"a CSR whose SANs differ from the request's",
			mod(func(r *backends.SignRequest) { r.URIs = []*url.URL{other} }), nil},
		{"a CSR that adds a DNS name to the request's SANs",
			mod(func(r *backends.SignRequest) { r.CSR.DNSNames = []string{"admin.example"} }), nil},
		{"a public key other than the CSR's",
			mod(func(r *backends.SignRequest) { r.PublicKey = ecKey(t).Public() }), nil},
		{"no CSR", mod(func(r *backends.SignRequest) { r.CSR = nil }), nil},
		{"a zero TTL", mod(func(r *backends.SignRequest) { r.TTL = 0 }), nil},
		{"a subject, which step-ca's template decides",
			mod(func(r *backends.SignRequest) { r.Subject = pkix.Name{CommonName: id} }), nil},
		{"no SAN", mod(func(r *backends.SignRequest) { r.URIs, r.CSR.URIs = nil, nil }), nil},
		{"a URI SAN that is not a Kubernetes SPIFFE ID",
			func(t *testing.T) *backends.SignRequest {
				return signRequest(t, key, "spiffe://cluster.local/ns/a/sa/b/extra", time.Hour)
			}, csr.ErrInvalidID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hung.accepted.Load()
			_, err := b.Sign(context.Background(), tt.req(t))
			if !errors.Is(err, backends.ErrRefused) || (tt.andWant != nil && !errors.Is(err, tt.andWant)) {
				t.Fatalf("Sign = %v, want ErrRefused (and %v)", err, tt.andWant)
			}
			if errors.Is(err, backends.ErrUnavailable) {
				t.Errorf("a refusal must not read as unavailable (the core would fail over): %v", err)
			}
			time.Sleep(20 * time.Millisecond) // let the listener count a connection, had there been one
			if n := hung.accepted.Load() - before; n != 0 {
				t.Errorf("Sign opened %d connections to step-ca; the request must be refused before step-ca is asked",
					n)
			}
		})
	}
	if err := b.Revoke(context.Background(), &backends.RevokeRequest{}); !errors.Is(err, backends.ErrRefused) {
		t.Errorf("Revoke without a serial = %v, want ErrRefused", err)
	}
	reason7 := &backends.RevokeRequest{SerialNumber: big.NewInt(1), Reason: 7}
	if err := b.Revoke(context.Background(), reason7); !errors.Is(err, backends.ErrRefused) {
		t.Errorf("Revoke with reason 7 = %v, want ErrRefused", err)
	}
}

package stepca_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/stepca"
)

// TestCallsEndAtTheDeadlineWhenStepCAHangs points the backend at a listener that accepts connections and never
// answers, as a wedged step-ca or a black-holing proxy would: every call ends at the configured timeout with
// ErrUnavailable.
func TestCallsEndAtTheDeadlineWhenStepCAHangs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()

	// A roots file so New needs nothing from the hung server.
	key := ecKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
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
	const timeout = 300 * time.Millisecond
	b, err := stepca.New(context.Background(), stepca.Config{
		URL:       "https://127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port),
		RootsFile: roots,
		JWK:       &stepca.JWKConfig{Provisioner: "p", KeyFile: jwk},
		Timeout:   timeout,
		Logger:    quietLogger(),
	})
	if err != nil {
		t.Fatalf("New must succeed while step-ca does not answer: %v", err)
	}
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
		start := time.Now()
		err := call(context.Background())
		elapsed := time.Since(start)
		if !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("%s = %v, want ErrUnavailable", name, err)
		}
		if elapsed > timeout+500*time.Millisecond {
			t.Errorf("%s took %s, want about the %s timeout", name, elapsed, timeout)
		}
	}
}

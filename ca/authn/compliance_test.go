package authn_test

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/compliance"
)

// A JWKS endpoint that offers only classical key exchange is unreachable under compliancePolicy pqc, and
// reachable without a policy: the policy reaches the fetches' TLS configuration.
func TestRemoteKeysFollowTheCompliancePolicy(t *testing.T) {
	var handshakes atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	srv.TLS = &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
		VerifyConnection: func(tls.ConnectionState) error { handshakes.Add(1); return nil }}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE",
		Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		policy compliance.Policy
		want   int32
	}{
		{"under pqc the classical-only endpoint is never reached", compliance.PQC, 0},
		{"without a policy it is reached", compliance.None, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			handshakes.Store(0)
			keys, err := authn.NewRemoteKeys(authn.RemoteKeysConfig{Issuer: "https://issuer.test",
				JWKSURL: srv.URL, CAFile: caFile, TLSPolicy: tc.policy})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = keys.Keys(t.Context(), "some-kid")
			if got := handshakes.Load(); got != tc.want {
				t.Fatalf("completed handshakes: %d, want %d", got, tc.want)
			}
		})
	}
}

package vault_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/backends/vault/vaulttest"
	"github.com/meshca/meshca/internal/compliance"
)

// tlsFront serves the real Vault over TLS with a certificate for "vault.internal" from a CA of its own, and
// records the X-Vault-Namespace header of every request before removing it (open-source Vault has no
// namespaces; Enterprise would route on it).
type tlsFront struct {
	srv        *httptest.Server
	caPEM      string
	mu         sync.Mutex
	namespaces map[string]int // header value → requests
	paths      map[string]bool
	groups     map[tls.CurveID]int // key exchanges of completed handshakes
}

// newTLSFront starts the front; curves, when given, are the only key exchanges it accepts.
func newTLSFront(t *testing.T, vaultAddr string, curves ...tls.CurveID) *tlsFront {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vault front CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		DNSNames: []string{"vault.internal"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature},
		caCert, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(vaultAddr)
	f := &tlsFront{caPEM: string(pemBlock("CERTIFICATE", caDER)), namespaces: map[string]int{},
		paths: map[string]bool{}, groups: map[tls.CurveID]int{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.namespaces[r.Header.Get("X-Vault-Namespace")]++
		f.paths[r.URL.Path] = true
		f.mu.Unlock()
		r.Header.Del("X-Vault-Namespace")
		proxy.ServeHTTP(w, r)
	}))
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}},
		CurvePreferences: curves, VerifyConnection: func(cs tls.ConnectionState) error {
			f.mu.Lock()
			f.groups[cs.CurveID]++
			f.mu.Unlock()
			return nil
		}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// TLS to Vault with a configured CA bundle and server name, and the Enterprise namespace header on every
// request (login, issuer fetch, sign, CRL).
func TestTLSAndNamespace(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	front := newTLSFront(t, s.Addr)
	mount, roleID, secretID := s.AppRole(t, time.Hour, p.Policy)
	cfg := config(t, s, p)
	cfg.Address = front.srv.URL // https://127.0.0.1:<port>
	cfg.Namespace = "team-a/mesh"
	cfg.TLS = vault.TLSConfig{CAPEM: front.caPEM, ServerName: "vault.internal"}
	cfg.Auth = vault.AuthConfig{Method: vault.AuthAppRole, MountPath: mount, RoleID: roleID,
		SecretID: vault.Secret(secretID)}
	b := newBackend(t, cfg)
	signWorks(t, b, "over TLS")
	if _, err := b.CRL(t.Context()); err != nil {
		t.Fatalf("CRL over TLS: %v", err)
	}
	front.mu.Lock()
	if n := front.namespaces[""]; n != 0 || front.namespaces["team-a/mesh"] < 4 {
		t.Errorf("requests by namespace header: %v, want every request with team-a/mesh", front.namespaces)
	}
	for _, path := range []string{
		"/v1/auth/" + mount + "/login", "/v1/" + p.Mount + "/sign/" + p.Role, "/v1/" + p.Mount + "/crl",
	} {
		if !front.paths[path] {
			t.Errorf("no request for %s went through the TLS front (saw %v)", path, front.paths)
		}
	}
	front.mu.Unlock()

	t.Run("without the CA bundle Vault's certificate is refused", func(t *testing.T) {
		c := cfg
		c.TLS = vault.TLSConfig{ServerName: "vault.internal"}
		if _, err := vault.New(t.Context(), c); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("New without the CA: %v, want ErrUnavailable (certificate not trusted)", err)
		}
	})
	t.Run("under compliancePolicy pqc Vault is reached over X25519MLKEM768 only", func(t *testing.T) {
		c := cfg
		c.TLSPolicy = compliance.PQC
		signWorks(t, newBackend(t, c), "over TLS under pqc")
		classical := newTLSFront(t, s.Addr, tls.X25519, tls.CurveP256)
		c.Address = classical.srv.URL
		c.TLS.CAPEM = classical.caPEM
		if _, err := vault.New(t.Context(), c); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("New under pqc against a Vault without ML-KEM: %v, want ErrUnavailable", err)
		}
		c.TLSPolicy = compliance.None
		signWorks(t, newBackend(t, c), "over classical TLS without a policy")
		front.mu.Lock()
		defer front.mu.Unlock()
		if front.groups[tls.X25519MLKEM768] == 0 {
			t.Errorf("Vault's front saw key exchanges %v, want X25519MLKEM768", front.groups)
		}
	})
	t.Run("a server name the certificate does not hold is refused", func(t *testing.T) {
		c := cfg
		c.TLS = vault.TLSConfig{CAPEM: front.caPEM, ServerName: "vault.example.com"}
		if _, err := vault.New(t.Context(), c); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("New with the wrong server name: %v, want ErrUnavailable", err)
		}
	})
}

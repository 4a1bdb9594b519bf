package stepcatest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/testproc"
)

// Options shapes a test step-ca. The zero value is usable.
type Options struct {
	// TrustDomain is the one SPIFFE trust domain the name policy allows. Default "cluster.local".
	TrustDomain string
	// X5CCredentialTTL is the lifetime of meshca's X5C credential. Default 2h, short enough that tests can
	// see step-ca's limit on certificates outliving it.
	X5CCredentialTTL time.Duration
	// Port is the loopback port to listen on; default a free one.
	Port int
}

// Server is a running step-ca and everything a client needs to talk to it.
type Server struct {
	// URL is https://127.0.0.1:<port>.
	URL string
	// Port is the loopback port step-ca listens on.
	Port int
	// Dir holds ca.json, the keys, the database and step-ca.log.
	Dir string
	// TrustDomain is the trust domain the name policy allows.
	TrustDomain string

	// Root and Intermediate are step-ca's CA certificates.
	Root, Intermediate *x509.Certificate
	// RootFingerprint is the hex SHA-256 of Root's DER.
	RootFingerprint string
	// RootsFile is Root in PEM.
	RootsFile string

	// JWK describes the JWK provisioner.
	JWK JWKProvisioner
	// X5C describes the X5C provisioner and meshca's credential for it.
	X5C X5CProvisioner

	// StartupTime is how long the last start took, from exec to a healthy /health.
	StartupTime time.Duration

	bin  string
	mu   sync.Mutex
	proc *testproc.Process
}

// JWKProvisioner is the JWK provisioner's name and key files.
type JWKProvisioner struct {
	Name string
	// KeyFile is the private JWK encrypted as a compact JWE (PBES2-HS256+A128KW, A256GCM), as in ca.json's
	// encryptedKey; PlainKeyFile is the same key unencrypted.
	KeyFile, PlainKeyFile string
	// PasswordFile holds KeyFile's password.
	PasswordFile string
	// Key is the private key, for tests that mint tokens themselves.
	Key jose.JSONWebKey
}

// X5CProvisioner is the X5C provisioner's name and meshca's credential for it.
type X5CProvisioner struct {
	Name string
	// CertFile and KeyFile are meshca's credential: a leaf certificate issued by the provisioner's root.
	CertFile, KeyFile string
	// NotBefore and NotAfter are the credential's validity; step-ca refuses certificates outside it.
	NotBefore, NotAfter time.Time
}

// Start launches a step-ca for one test and stops it in tb.Cleanup. Under -short the test is skipped.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	bin := catest.Binary(tb, "step-ca")
	s, err := Launch(bin, tb.TempDir(), opts)
	if err != nil {
		tb.Fatalf("stepcatest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("stepcatest: %v", err)
		}
	})
	return s
}

// Launch writes a new CA into dir and starts step-ca from bin, returning once /health answers. The caller
// must call Stop. Use it where no testing.TB lives long enough, such as a server shared from TestMain.
func Launch(bin, dir string, opts Options) (*Server, error) {
	if opts.TrustDomain == "" {
		opts.TrustDomain = "cluster.local"
	}
	if opts.X5CCredentialTTL == 0 {
		opts.X5CCredentialTTL = 2 * time.Hour
	}
	if opts.Port == 0 {
		var err error
		if opts.Port, err = testproc.FreePort(); err != nil {
			return nil, err
		}
	}
	s := &Server{
		URL:         "https://127.0.0.1:" + strconv.Itoa(opts.Port),
		Port:        opts.Port,
		Dir:         dir,
		TrustDomain: opts.TrustDomain,
		bin:         bin,
	}
	if err := s.writeCA(opts); err != nil {
		return nil, fmt.Errorf("writing the CA into %s: %w", dir, err)
	}
	if err := s.Restart(); err != nil {
		return nil, err
	}
	return s, nil
}

// Restart starts step-ca again on the same port with the same ca.json and database. It is a no-op when
// step-ca is running. It waits until /health answers over TLS with the test root, which also shows that the
// server on the port is this step-ca and not another process that took the port.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	start := time.Now()
	cmd := exec.Command(s.bin, filepath.Join(s.Dir, "ca.json"))
	cmd.Dir = s.Dir
	proc, err := testproc.Start(cmd, filepath.Join(s.Dir, "step-ca.log"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := proc.WaitReady(30*time.Second, 20*time.Millisecond, func() error { return s.Health(ctx) }); err != nil {
		_ = proc.Stop(time.Second)
		return fmt.Errorf("step-ca on port %d: %w", s.Port, err)
	}
	s.proc = proc
	s.StartupTime = time.Since(start)
	return nil
}

// Stop stops step-ca by its PID: SIGTERM, then SIGKILL after 5s. It is a no-op when step-ca is stopped.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.Stop(5 * time.Second)
	s.proc = nil
	return err
}

// Log returns step-ca's log so far. It holds whole tokens: print it only in tests.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "step-ca.log"))
	return string(b)
}

// writeCA generates every key and certificate and writes ca.json.
func (s *Server) writeCA(opts Options) error {
	now := time.Now().Truncate(time.Second)
	rootKey, root, err := newCA(nil, nil, "meshca test step-ca root", now, 10*365*24*time.Hour, 1)
	if err != nil {
		return err
	}
	interKey, inter, err := newCA(rootKey, root, "meshca test step-ca intermediate", now, 5*365*24*time.Hour, 0)
	if err != nil {
		return err
	}
	s.Root, s.Intermediate = root, inter
	sum := sha256.Sum256(root.Raw)
	s.RootFingerprint = hex.EncodeToString(sum[:])

	// The X5C provisioner trusts a registration-authority root of its own; meshca's credential is a leaf
	// under it.
	raKey, raRoot, err := newCA(nil, nil, "meshca test RA root", now, 365*24*time.Hour, 0)
	if err != nil {
		return err
	}
	credKey, cred, err := newLeaf(raKey, raRoot, "meshca", now, opts.X5CCredentialTTL)
	if err != nil {
		return err
	}

	jwkKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	jwk := jose.JSONWebKey{Key: jwkKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return err
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	privJSON, err := json.Marshal(jwk)
	if err != nil {
		return err
	}
	password := make([]byte, 24)
	if _, err := rand.Read(password); err != nil {
		return err
	}
	passwordText := base64.RawURLEncoding.EncodeToString(password)
	enc, err := jose.NewEncrypter(jose.A256GCM,
		jose.Recipient{Algorithm: jose.PBES2_HS256_A128KW, Key: []byte(passwordText), PBES2Count: 100000},
		(&jose.EncrypterOptions{}).WithContentType("jwk+json"))
	if err != nil {
		return err
	}
	jwe, err := enc.Encrypt(privJSON)
	if err != nil {
		return err
	}
	encKey, err := jwe.CompactSerialize()
	if err != nil {
		return err
	}
	pubJSON, err := json.Marshal(jwk.Public())
	if err != nil {
		return err
	}

	p := func(name string) string { return filepath.Join(s.Dir, name) }
	s.RootsFile = p("root.crt")
	s.JWK = JWKProvisioner{Name: "meshca-jwk", KeyFile: p("jwk.jwe"), PlainKeyFile: p("jwk.json"),
		PasswordFile: p("jwk.pass"), Key: jwk}
	s.X5C = X5CProvisioner{Name: "meshca-x5c", CertFile: p("x5c.crt"), KeyFile: p("x5c.key"),
		NotBefore: cred.NotBefore, NotAfter: cred.NotAfter}
	interKeyDER, err := x509.MarshalPKCS8PrivateKey(interKey)
	if err != nil {
		return err
	}
	credKeyDER, err := x509.MarshalPKCS8PrivateKey(credKey)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"root.crt":  pemCert(root),
		"inter.crt": pemCert(inter),
		"inter.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: interKeyDER}),
		"ra.crt":    pemCert(raRoot),
		"x5c.crt":   pemCert(cred),
		"x5c.key":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: credKeyDER}),
		"jwk.jwe":   []byte(encKey),
		"jwk.json":  privJSON,
		"jwk.pass":  []byte(passwordText + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(p(name), data, 0o600); err != nil {
			return err
		}
	}

	// The template certifies exactly the token's SANs (the backend puts the request's SANs there) with an
	// empty subject, as a SPIFFE X.509-SVID wants; keyEncipherment only for RSA keys (backends.CheckLeaf).
	const template = `{
	"subject": {},
	"sans": {{ toJson .SANs }},
{{- if typeIs "*rsa.PublicKey" .Insecure.CR.PublicKey }}
	"keyUsage": ["digitalSignature", "keyEncipherment"],
{{- else }}
	"keyUsage": ["digitalSignature"],
{{- end }}
	"extKeyUsage": ["serverAuth", "clientAuth"],
	"basicConstraints": {"isCA": false}
}`
	x509Opts := map[string]any{"template": template}
	caJSON := map[string]any{
		"root":     p("root.crt"),
		"crt":      p("inter.crt"),
		"key":      p("inter.key"),
		"address":  "127.0.0.1:" + strconv.Itoa(opts.Port),
		"dnsNames": []string{"127.0.0.1", "localhost"},
		"logger":   map[string]any{"format": "json"},
		"db":       map[string]any{"type": "bbolt", "dataSource": p("db")},
		"crl":      map[string]any{"enabled": true, "generateOnRevoke": true, "cacheDuration": "1h"},
		"authority": map[string]any{
			"claims": map[string]any{
				"minTLSCertDuration": "1m", "defaultTLSCertDuration": "1h", "maxTLSCertDuration": "24h",
				"disableRenewal": true, "disableSmallstepExtensions": true,
			},
			// The URI rule limits workload certificates to the trust domain; the DNS and IP rules let
			// step-ca issue its own serving certificate for 127.0.0.1 and localhost.
			"policy": map[string]any{"x509": map[string]any{"allow": map[string]any{
				"uri": []string{opts.TrustDomain}, "dns": []string{"localhost"}, "ip": []string{"127.0.0.1/32"},
			}}},
			"provisioners": []any{
				map[string]any{"type": "JWK", "name": s.JWK.Name, "key": json.RawMessage(pubJSON),
					"encryptedKey": encKey, "options": map[string]any{"x509": x509Opts}},
				map[string]any{"type": "X5C", "name": s.X5C.Name,
					"roots":   base64.StdEncoding.EncodeToString(pemCert(raRoot)),
					"options": map[string]any{"x509": x509Opts}},
			},
		},
		"tls": map[string]any{"minVersion": 1.2, "maxVersion": 1.3},
	}
	data, err := json.MarshalIndent(caJSON, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(p("ca.json"), data, 0o600)
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// newCA makes a CA certificate, self-signed when parent is nil.
func newCA(parentKey *ecdsa.PrivateKey, parent *x509.Certificate, cn string, now time.Time, ttl time.Duration,
	pathLen int) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{"meshca tests"}, CommonName: cn},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            pathLen,
		MaxPathLenZero:        pathLen == 0,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return key, c, err
}

// newLeaf makes a client certificate for signing X5C tokens.
func newLeaf(parentKey *ecdsa.PrivateKey, parent *x509.Certificate, cn string, now time.Time, ttl time.Duration) (
	*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return key, c, err
}

// Health asks step-ca's /health once, trusting Root; it is for tests that wait on an outage.
func (s *Server) Health(ctx context.Context) error {
	pool := x509.NewCertPool()
	pool.AddCert(s.Root)
	client := &http.Client{Timeout: time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("step-ca /health answered " + strings.ToLower(resp.Status))
	}
	return nil
}

package stepca

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/meshca/meshca/backends"
)

// tokenClaims is the payload of a step-ca one-time token (OTT): the registered claims plus the SANs the
// certificate will carry and, for signing, the CSR's fingerprint so the token is good for that CSR only.
type tokenClaims struct {
	jose.Claims
	SANs []string `json:"sans,omitempty"`
	CNF  *cnf     `json:"cnf,omitempty"`
}

// cnf is the RFC 7800 confirmation claim; step-ca checks x5rt#S256 against the CSR's DER.
type cnf struct {
	Fingerprint string `json:"x5rt#S256,omitempty"`
}

// minter signs one-time tokens for one provisioner.
type minter struct {
	name     string
	kind     string // "JWK" or "X5C"
	lifetime time.Duration

	jwk  *jose.JSONWebKey // JWK provisioner
	cred *credentialFile  // X5C provisioner
}

// newMinter loads the provisioner credential that cfg names. An X5C credential that has already expired is
// an error: step-ca would refuse every token it signs.
func newMinter(cfg *Config) (*minter, error) {
	m := &minter{name: cfg.provisionerName(), lifetime: cfg.TokenLifetime}
	if cfg.JWK != nil {
		k, err := loadJWK(cfg.JWK, cfg.Getenv)
		if err != nil {
			return nil, err
		}
		m.kind, m.jwk = "JWK", k
		return m, nil
	}
	m.kind, m.cred = "X5C", &credentialFile{cfg: cfg.X5C}
	c, err := m.cred.get()
	if err != nil {
		return nil, err
	}
	if na := c.chain[0].NotAfter; !cfg.Clock().Before(na) {
		return nil, fmt.Errorf("stepca: the x5c credential %s expired at %s; renew it", cfg.X5C.CertFile,
			na.UTC().Format(time.RFC3339))
	}
	return m, nil
}

// audience returns the token audience for a step-ca endpoint ("sign" or "revoke"). step-ca finds an X5C
// provisioner by the URL fragment x5c/<name>; a JWK provisioner by the token's iss and kid.
func (m *minter) audience(base *url.URL, endpoint string) string {
	u := base.JoinPath("1.0", endpoint)
	if m.kind == "X5C" {
		u.Fragment = "x5c/" + m.name
	}
	return u.String()
}

// mint returns a signed token for aud with the given subject and SANs. fingerprint, when not empty, binds
// the token to one CSR.
func (m *minter) mint(now time.Time, aud, sub string, sans []string, fingerprint string) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("stepca: token id: %w", err)
	}
	claims := tokenClaims{
		Claims: jose.Claims{
			ID:        hex.EncodeToString(jti[:]),
			Issuer:    m.name,
			Subject:   sub,
			Audience:  jose.Audience{aud},
			NotBefore: jose.NewNumericDate(now),
			IssuedAt:  jose.NewNumericDate(now),
			Expiry:    jose.NewNumericDate(now.Add(m.lifetime)),
		},
		SANs: sans,
	}
	if fingerprint != "" {
		claims.CNF = &cnf{Fingerprint: fingerprint}
	}
	key, opts, err := m.signingKey()
	if err != nil {
		return "", err
	}
	sig, err := jose.NewSigner(key, opts)
	if err != nil {
		return "", fmt.Errorf("stepca: token signer for provisioner %q: %w", m.name, err)
	}
	tok, err := jose.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("stepca: signing a token for provisioner %q: %w", m.name, err)
	}
	return tok, nil
}

// signingKey returns the key that signs tokens and the header that names it: the JWK's kid, or the X5C
// credential's chain (RFC 7515 §4.1.6).
func (m *minter) signingKey() (jose.SigningKey, *jose.SignerOptions, error) {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if m.kind == "JWK" {
		return jose.SigningKey{Algorithm: jose.SignatureAlgorithm(m.jwk.Algorithm), Key: m.jwk.Key},
			opts.WithHeader("kid", m.jwk.KeyID), nil
	}
	c, err := m.cred.get()
	if err != nil {
		return jose.SigningKey{}, nil, err
	}
	return jose.SigningKey{Algorithm: jose.SignatureAlgorithm(c.key.Algorithm), Key: c.key.Key},
		opts.WithHeader("x5c", c.x5c), nil
}

// window returns the validity window step-ca allows for certificates from this provisioner: an X5C
// provisioner refuses certificates that start before or end after the credential that signed the token. For a
// JWK provisioner both times are zero (no limit).
func (m *minter) window() (notBefore, notAfter time.Time, err error) {
	if m.kind != "X5C" {
		return time.Time{}, time.Time{}, nil
	}
	c, err := m.cred.get()
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	return c.chain[0].NotBefore, c.chain[0].NotAfter, nil
}

// loadJWK reads a JWK provisioner's private key with go.step.sm/crypto/jose, as step does: a JWE (compact or
// JSON serialization) decrypted with the configured password, or a plain private JWK. The algorithm is
// guessed from the key when the JWK does not name one.
func loadJWK(cfg *JWKConfig, getenv func(string) string) (*jose.JSONWebKey, error) {
	data, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("stepca: reading jwk.keyFile: %w", err)
	}
	opts := []jose.Option{jose.WithFilename(cfg.KeyFile)}
	withPassword := cfg.PasswordFile != "" || cfg.PasswordEnv != ""
	if withPassword {
		password, err := jwkPassword(cfg, getenv)
		if err != nil {
			return nil, err
		}
		opts = append(opts, jose.WithPassword(password))
	}
	k, err := jose.ParseKey(bytes.TrimSpace(data), opts...)
	switch {
	case err != nil && withPassword:
		return nil, fmt.Errorf("stepca: jwk.keyFile %s could not be read or decrypted; check the file and the "+
			"password: %w", cfg.KeyFile, err)
	case err != nil:
		return nil, fmt.Errorf("stepca: jwk.keyFile %s is not a plain private JWK (an encrypted JWE needs "+
			"jwk.passwordFile or jwk.passwordEnv): %w", cfg.KeyFile, err)
	case k.IsPublic():
		return nil, fmt.Errorf("stepca: jwk.keyFile %s holds a public key; meshca needs the provisioner's private key",
			cfg.KeyFile)
	case k.KeyID == "":
		return nil, fmt.Errorf("stepca: jwk.keyFile %s has no kid; step-ca finds a JWK provisioner by its kid",
			cfg.KeyFile)
	case k.Algorithm == "":
		return nil, fmt.Errorf("stepca: jwk.keyFile %s: no signature algorithm for a %T key", cfg.KeyFile, k.Key)
	}
	return k, nil
}

func jwkPassword(cfg *JWKConfig, getenv func(string) string) ([]byte, error) {
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("stepca: reading jwk.passwordFile: %w", err)
		}
		return bytes.TrimRight(b, "\r\n"), nil
	}
	if p := getenv(cfg.PasswordEnv); p != "" {
		return []byte(p), nil
	}
	return nil, fmt.Errorf("stepca: jwk.keyFile %s is encrypted but $%s (jwk.passwordEnv) is empty", cfg.KeyFile,
		cfg.PasswordEnv)
}

// credential is meshca's X5C credential: a certificate chain (leaf first) and the leaf's key.
type credential struct {
	chain []*x509.Certificate
	key   *jose.JSONWebKey
	x5c   []string // standard base64 DER, RFC 7515 §4.1.6

	certStamp, keyStamp fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// credentialFile loads the X5C credential and reloads it when either file changes on disk, so a rotated
// credential (cert-manager, a mounted Secret) is picked up without a restart.
type credentialFile struct {
	cfg *X5CConfig
	cur atomic.Pointer[credential]
	mu  sync.Mutex // serialises reloads (local file reads only)
}

func (f *credentialFile) get() (*credential, error) {
	cur := f.cur.Load()
	cs, err1 := stamp(f.cfg.CertFile)
	ks, err2 := stamp(f.cfg.KeyFile)
	if cur != nil && err1 == nil && err2 == nil && cs == cur.certStamp && ks == cur.keyStamp {
		return cur, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.cur.Load(); c != cur && c != nil { // another goroutine reloaded meanwhile
		return c, nil
	}
	c, err := loadCredential(f.cfg)
	if err != nil {
		if cur != nil { // a half-written rotation: keep signing with the previous credential
			return cur, nil
		}
		return nil, err
	}
	f.cur.Store(c)
	return c, nil
}

// loadCredential reads the X5C certificate chain and key. go.step.sm/crypto/jose checks that they belong
// together and that the certificate may sign (digitalSignature), and encodes the x5c header; step-ca also
// requires the clientAuth usage, checked here.
func loadCredential(cfg *X5CConfig) (*credential, error) {
	cs, err := stamp(cfg.CertFile)
	if err != nil {
		return nil, fmt.Errorf("stepca: x5c.certFile: %w", err)
	}
	ks, err := stamp(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("stepca: x5c.keyFile: %w", err)
	}
	certPEM, err := os.ReadFile(cfg.CertFile)
	if err != nil {
		return nil, fmt.Errorf("stepca: reading x5c.certFile: %w", err)
	}
	chain, err := backends.ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("stepca: x5c.certFile %s: %w", cfg.CertFile, err)
	}
	keyPEM, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("stepca: reading x5c.keyFile: %w", err)
	}
	key, err := jose.ParseKey(keyPEM, jose.WithFilename(cfg.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("stepca: x5c.keyFile %s: %w", cfg.KeyFile, err)
	}
	x5c, err := jose.ValidateX5C(chain, key.Key)
	if err != nil {
		return nil, fmt.Errorf("stepca: x5c.keyFile %s and the first certificate of x5c.certFile %s cannot sign "+
			"tokens: %w", cfg.KeyFile, cfg.CertFile, err)
	}
	leaf := chain[0]
	clientAuth := len(leaf.ExtKeyUsage) == 0
	for _, u := range leaf.ExtKeyUsage {
		clientAuth = clientAuth || u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny
	}
	if !clientAuth {
		return nil, fmt.Errorf("stepca: the x5c certificate %s lacks the clientAuth extended key usage step-ca "+
			"requires", cfg.CertFile)
	}
	return &credential{chain: chain, key: key, x5c: x5c, certStamp: cs, keyStamp: ks}, nil
}

// csrFingerprint is the x5rt#S256 value step-ca compares with the CSR: base64url SHA-256 of its DER.
func csrFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

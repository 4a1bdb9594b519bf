package stepca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/meshca/meshca/backends"
)

// tokenClaims is the payload of a step-ca one-time token (OTT): the registered claims plus the SANs the
// certificate will carry and, for signing, the CSR's fingerprint so the token is good for that CSR only.
type tokenClaims struct {
	jwt.Claims
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
		Claims: jwt.Claims{
			ID:        hex.EncodeToString(jti[:]),
			Issuer:    m.name,
			Subject:   sub,
			Audience:  jwt.Audience{aud},
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			Expiry:    jwt.NewNumericDate(now.Add(m.lifetime)),
		},
		SANs: sans,
	}
	if fingerprint != "" {
		claims.CNF = &cnf{Fingerprint: fingerprint}
	}
	var (
		key  jose.SigningKey
		opts = (&jose.SignerOptions{}).WithType("JWT")
	)
	switch m.kind {
	case "JWK":
		key = jose.SigningKey{Algorithm: jose.SignatureAlgorithm(m.jwk.Algorithm), Key: m.jwk.Key}
		opts = opts.WithHeader("kid", m.jwk.KeyID)
	case "X5C":
		c, err := m.cred.get()
		if err != nil {
			return "", err
		}
		key = jose.SigningKey{Algorithm: c.alg, Key: c.key}
		opts = opts.WithHeader("x5c", c.x5c)
	}
	sig, err := jose.NewSigner(key, opts)
	if err != nil {
		return "", fmt.Errorf("stepca: token signer for provisioner %q: %w", m.name, err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("stepca: signing a token for provisioner %q: %w", m.name, err)
	}
	return tok, nil
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

// loadJWK reads a JWK provisioner's private key: a JWE (compact or JSON serialization, as step writes it)
// decrypted with the configured password, or a plain private JWK.
func loadJWK(cfg *JWKConfig, getenv func(string) string) (*jose.JSONWebKey, error) {
	data, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("stepca: reading jwk.keyFile: %w", err)
	}
	data = bytes.TrimSpace(data)
	if isJWE(data) {
		password, err := jwkPassword(cfg, getenv)
		if err != nil {
			return nil, err
		}
		enc, err := jose.ParseEncrypted(string(data),
			[]jose.KeyAlgorithm{jose.PBES2_HS256_A128KW, jose.PBES2_HS384_A192KW, jose.PBES2_HS512_A256KW},
			[]jose.ContentEncryption{jose.A128GCM, jose.A192GCM, jose.A256GCM, jose.A128CBC_HS256, jose.A192CBC_HS384, jose.A256CBC_HS512})
		if err != nil {
			return nil, fmt.Errorf("stepca: jwk.keyFile %s is not a JWE this backend can read (want PBES2 key wrapping): %w", cfg.KeyFile, err)
		}
		if data, err = enc.Decrypt(password); err != nil {
			return nil, fmt.Errorf("stepca: decrypting jwk.keyFile %s failed; check the password: %w", cfg.KeyFile, err)
		}
	}
	var k jose.JSONWebKey
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("stepca: jwk.keyFile %s is neither a JWE nor a JWK: %w", cfg.KeyFile, err)
	}
	if k.IsPublic() {
		return nil, fmt.Errorf("stepca: jwk.keyFile %s holds a public key; meshca needs the provisioner's private key", cfg.KeyFile)
	}
	if k.KeyID == "" {
		return nil, fmt.Errorf("stepca: jwk.keyFile %s has no kid; step-ca finds a JWK provisioner by its kid", cfg.KeyFile)
	}
	if k.Algorithm == "" {
		signer, ok := k.Key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("stepca: jwk.keyFile %s does not hold a signing key", cfg.KeyFile)
		}
		if k.Algorithm, err = signatureAlgorithm(signer.Public()); err != nil {
			return nil, fmt.Errorf("stepca: jwk.keyFile %s: %w", cfg.KeyFile, err)
		}
	}
	return &k, nil
}

// isJWE reports whether data looks like a JWE: compact (five dot-separated parts) or JSON with a ciphertext.
func isJWE(data []byte) bool {
	if len(data) > 0 && data[0] == '{' {
		var probe struct {
			Ciphertext *string `json:"ciphertext"`
		}
		return json.Unmarshal(data, &probe) == nil && probe.Ciphertext != nil
	}
	return bytes.Count(data, []byte(".")) == 4
}

func jwkPassword(cfg *JWKConfig, getenv func(string) string) ([]byte, error) {
	switch {
	case cfg.PasswordFile != "":
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("stepca: reading jwk.passwordFile: %w", err)
		}
		return bytes.TrimRight(b, "\r\n"), nil
	case cfg.PasswordEnv != "":
		if p := getenv(cfg.PasswordEnv); p != "" {
			return []byte(p), nil
		}
		return nil, fmt.Errorf("stepca: jwk.keyFile %s is encrypted but $%s is empty", cfg.KeyFile, cfg.PasswordEnv)
	}
	return nil, fmt.Errorf("stepca: jwk.keyFile %s is encrypted; set jwk.passwordFile or jwk.passwordEnv", cfg.KeyFile)
}

// signatureAlgorithm picks the JWS algorithm for a key, as step does.
func signatureAlgorithm(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return string(jose.ES256), nil
		case elliptic.P384():
			return string(jose.ES384), nil
		case elliptic.P521():
			return string(jose.ES512), nil
		}
	case *rsa.PublicKey:
		return string(jose.RS256), nil
	case ed25519.PublicKey:
		return string(jose.EdDSA), nil
	}
	return "", fmt.Errorf("unsupported token key type %T", pub)
}

// credential is meshca's X5C credential: a certificate chain (leaf first) and the leaf's key.
type credential struct {
	chain []*x509.Certificate
	key   crypto.Signer
	alg   jose.SignatureAlgorithm
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
	key, err := backends.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("stepca: x5c.keyFile %s: %w", cfg.KeyFile, err)
	}
	leaf := chain[0]
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		return nil, fmt.Errorf("stepca: x5c.keyFile %s does not match the first certificate in %s", cfg.KeyFile, cfg.CertFile)
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, fmt.Errorf("stepca: the x5c certificate %s lacks the digitalSignature key usage step-ca requires", cfg.CertFile)
	}
	clientAuth := len(leaf.ExtKeyUsage) == 0
	for _, u := range leaf.ExtKeyUsage {
		clientAuth = clientAuth || u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny
	}
	if !clientAuth {
		return nil, fmt.Errorf("stepca: the x5c certificate %s lacks the clientAuth extended key usage step-ca requires", cfg.CertFile)
	}
	alg, err := signatureAlgorithm(key.Public())
	if err != nil {
		return nil, fmt.Errorf("stepca: x5c.keyFile %s: %w", cfg.KeyFile, err)
	}
	x5c := make([]string, len(chain))
	for i, c := range chain {
		x5c[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	return &credential{chain: chain, key: key, alg: jose.SignatureAlgorithm(alg), x5c: x5c, certStamp: cs, keyStamp: ks}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// csrFingerprint is the x5rt#S256 value step-ca compares with the CSR: base64url SHA-256 of its DER.
func csrFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

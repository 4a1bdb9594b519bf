package devtoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/meshca/meshca/ca/authn"
)

const (
	// DefaultIssuer is the "iss" of minted tokens unless another is set.
	DefaultIssuer = "https://meshca.dev/token-issuer"
	// KeyFile is the name of the minter's private key in a dev directory (`meshca init --dir DIR`), where
	// `meshca serve --dev`, `meshca token` and meshca-loadtest find it.
	KeyFile = "token-issuer-key.pem"
)

// Minter mints Kubernetes-style service-account tokens. Authenticate them with authn.JWT over Keys.
type Minter struct {
	// Issuer is the "iss" claim of the minted tokens.
	Issuer string
	key    crypto.Signer
	jwk    jose.JSONWebKey
	signer jose.Signer
}

// New returns a minter signing with key (ES256 for ECDSA P-256) as issuer (default DefaultIssuer).
func New(issuer string, key crypto.Signer) (*Minter, error) {
	alg := jose.ES256
	if _, ok := key.(*ecdsa.PrivateKey); !ok {
		return nil, errors.New("devtoken: the key must be ECDSA P-256")
	}
	pub := jose.JSONWebKey{Key: key.Public(), Algorithm: string(alg), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: pub.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	if issuer == "" {
		issuer = DefaultIssuer
	}
	return &Minter{Issuer: issuer, key: key, jwk: pub, signer: s}, nil
}

// Generate returns a minter with a fresh key.
func Generate(issuer string) (*Minter, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return New(issuer, k)
}

// Load returns a minter signing with the PEM private key written by WriteKey.
func Load(issuer, keyFile string) (*Minter, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("devtoken: reading the token key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("devtoken: %s holds no PEM key", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devtoken: %s: %w", keyFile, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("devtoken: %s: not a signing key", keyFile)
	}
	return New(issuer, s)
}

// WriteKey writes the private key as PKCS #8 PEM with mode 0600.
func (m *Minter) WriteKey(path string) error {
	der, err := x509.MarshalPKCS8PrivateKey(m.key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// Keys returns the public key set that verifies the minted tokens.
func (m *Minter) Keys() *authn.StaticKeys { return authn.NewStaticKeys(m.jwk) }

// Claims describes one token to mint.
type Claims struct {
	Namespace, ServiceAccount string
	// Audiences default to [authn.DefaultAudience].
	Audiences []string
	// PodName, PodUID and NodeName add the bound-token pod and node claims.
	PodName, PodUID, NodeName string
	// IssuedAt defaults to now; TTL defaults to 1h. A negative TTL mints an expired token.
	IssuedAt time.Time
	TTL      time.Duration
	// NotBefore, when set, is the nbf claim.
	NotBefore time.Time
	// NoExpiry leaves out the exp claim, which meshca refuses: for tests of that refusal.
	NoExpiry bool
}

// Mint returns a signed token for c.
func (m *Minter) Mint(c Claims) (string, error) {
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.TTL == 0 {
		c.TTL = time.Hour
	}
	if len(c.Audiences) == 0 {
		c.Audiences = []string{authn.DefaultAudience}
	}
	std := jwt.Claims{
		Issuer:   m.Issuer,
		Subject:  "system:serviceaccount:" + c.Namespace + ":" + c.ServiceAccount,
		Audience: c.Audiences,
		IssuedAt: jwt.NewNumericDate(c.IssuedAt),
		Expiry:   jwt.NewNumericDate(c.IssuedAt.Add(c.TTL)),
	}
	if c.NoExpiry {
		std.Expiry = nil
	}
	if !c.NotBefore.IsZero() {
		std.NotBefore = jwt.NewNumericDate(c.NotBefore)
	}
	k8s := map[string]any{
		"namespace":      c.Namespace,
		"serviceaccount": map[string]string{"name": c.ServiceAccount, "uid": "00000000-0000-0000-0000-000000000000"},
	}
	if c.PodName != "" {
		k8s["pod"] = map[string]string{"name": c.PodName, "uid": c.PodUID}
	}
	if c.NodeName != "" {
		k8s["node"] = map[string]string{"name": c.NodeName, "uid": ""}
	}
	return jwt.Signed(m.signer).Claims(std).Claims(map[string]any{"kubernetes.io": k8s}).Serialize()
}

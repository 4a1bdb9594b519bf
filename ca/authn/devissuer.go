package authn

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
)

// DevIssuerName is the "iss" of tokens minted by a DevIssuer unless another is set.
const DevIssuerName = "https://meshca.dev/token-issuer"

// DevIssuer mints Kubernetes-style service-account tokens for development (`meshca token`), tests and the load
// generator, so the whole flow runs without a cluster. Production trusts the cluster's issuer instead.
type DevIssuer struct {
	Issuer string
	key    crypto.Signer
	jwk    jose.JSONWebKey
	signer jose.Signer
}

// NewDevIssuer returns an issuer signing with key (ES256 for ECDSA P-256).
func NewDevIssuer(issuer string, key crypto.Signer) (*DevIssuer, error) {
	alg := jose.ES256
	if _, ok := key.(*ecdsa.PrivateKey); !ok {
		return nil, errors.New("authn: dev issuer key must be ECDSA P-256")
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
		issuer = DevIssuerName
	}
	return &DevIssuer{Issuer: issuer, key: key, jwk: pub, signer: s}, nil
}

// GenerateDevIssuer returns a DevIssuer with a fresh key.
func GenerateDevIssuer(issuer string) (*DevIssuer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return NewDevIssuer(issuer, k)
}

// LoadDevIssuer reads the PEM private key written by WriteKey.
func LoadDevIssuer(issuer, keyFile string) (*DevIssuer, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("authn: reading dev issuer key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("authn: %s holds no PEM key", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("authn: %s: %w", keyFile, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("authn: %s: not a signing key", keyFile)
	}
	return NewDevIssuer(issuer, s)
}

// WriteKey writes the private key as PKCS #8 PEM with mode 0600.
func (d *DevIssuer) WriteKey(path string) error {
	der, err := x509.MarshalPKCS8PrivateKey(d.key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// Keys returns the public key set that verifies this issuer's tokens.
func (d *DevIssuer) Keys() *StaticKeys { return NewStaticKeys(d.jwk) }

// TokenClaims describes one token to mint.
type TokenClaims struct {
	Namespace, ServiceAccount string
	// Audiences default to ["istio-ca"].
	Audiences []string
	// PodName, PodUID and NodeName add the bound-token pod and node claims.
	PodName, PodUID, NodeName string
	// IssuedAt defaults to now; TTL defaults to 1h. A negative TTL mints an expired token.
	IssuedAt time.Time
	TTL      time.Duration
	// NotBefore, when set, is the nbf claim.
	NotBefore time.Time
}

// Mint returns a signed token for c.
func (d *DevIssuer) Mint(c TokenClaims) (string, error) {
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.TTL == 0 {
		c.TTL = time.Hour
	}
	if len(c.Audiences) == 0 {
		c.Audiences = []string{"istio-ca"}
	}
	std := jwt.Claims{
		Issuer:   d.Issuer,
		Subject:  "system:serviceaccount:" + c.Namespace + ":" + c.ServiceAccount,
		Audience: c.Audiences,
		IssuedAt: jwt.NewNumericDate(c.IssuedAt),
		Expiry:   jwt.NewNumericDate(c.IssuedAt.Add(c.TTL)),
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
	return jwt.Signed(d.signer).Claims(std).Claims(map[string]any{"kubernetes.io": k8s}).Serialize()
}

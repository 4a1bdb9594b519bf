package baseline

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshca/meshca/backends/file"
)

// CA is the signing CA every case shares: meshca's dev intermediate (`meshca init`), ECDSA P-256.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Dir is the cacerts directory (Istio's plugged-in CA layout).
	Dir string
}

// LoadCA reads the signing certificate and key from an Istio cacerts directory.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, file.CACertFile))
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, file.CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("baseline: no PEM block in %s or %s", file.CACertFile, file.CAKeyFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("baseline: %s: %w", file.CACertFile, err)
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(kb.Bytes); err != nil {
		if key, err = x509.ParseECPrivateKey(kb.Bytes); err != nil {
			return nil, fmt.Errorf("baseline: %s: %w", file.CAKeyFile, err)
		}
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("baseline: %s is not a signing key", file.CAKeyFile)
	}
	return &CA{Cert: cert, Key: signer, Dir: dir}, nil
}

var errNoCSR = errors.New("baseline: no CERTIFICATE REQUEST PEM block")

// StdlibFloor issues a workload certificate for id the least a CA can: parse the CSR and verify its
// self-signature, then x509.CreateCertificate, which checks its own signature (two verifications, one
// signing). There is no policy, no audit, no chain check and no authentication.
func (c *CA) StdlibFloor(csrPEM []byte, id *url.URL) ([]byte, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil {
		return nil, errNoCSR
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, err
	}
	if err := req.CheckSignature(); err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour),
		URIs: []*url.URL{id}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	return x509.CreateCertificate(rand.Reader, tmpl, c.Cert, req.PublicKey, c.Key)
}

// EssentialFloor is StdlibFloor for the identity an ES256 service-account token proves: the token is split,
// decoded, verified with pub and its claims decoded (VerifyToken) before the CSR is.
func (c *CA) EssentialFloor(token string, pub *ecdsa.PublicKey, trustDomain string, csrPEM []byte) ([]byte, error) {
	claims, err := VerifyToken(token, pub, time.Now())
	if err != nil {
		return nil, err
	}
	k := claims.Kubernetes
	id := &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/ns/" + k.Namespace + "/sa/" + k.ServiceAccount.Name}
	return c.StdlibFloor(csrPEM, id)
}

// Claims are the token claims the essential floor needs.
type Claims struct {
	Issuer     string          `json:"iss"`
	Subject    string          `json:"sub"`
	Audience   json.RawMessage `json:"aud"`
	Expiry     int64           `json:"exp"`
	Kubernetes struct {
		Namespace      string `json:"namespace"`
		ServiceAccount struct {
			Name string `json:"name"`
		} `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

// VerifyToken is the least work that proves an ES256 compact JWS: split it, decode the header, payload and
// signature, verify the signature with pub, decode the claims and check the expiry. Nothing is cached.
func VerifyToken(token string, pub *ecdsa.PublicKey, now time.Time) (*Claims, error) {
	h, rest, ok1 := strings.Cut(token, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return nil, errors.New("baseline: token is not a compact JWS")
	}
	hdr, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("baseline: token header: %w", err)
	}
	var head struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hdr, &head); err != nil || head.Alg != "ES256" {
		return nil, fmt.Errorf("baseline: token header %q: want alg ES256", hdr)
	}
	sig, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(sig) != 64 {
		return nil, errors.New("baseline: token signature: want 64 bytes of r || s")
	}
	digest := sha256.Sum256([]byte(token[:len(h)+1+len(p)]))
	r, sv := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, sv) {
		return nil, errors.New("baseline: token signature does not verify")
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("baseline: token payload: %w", err)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("baseline: token claims: %w", err)
	}
	if now.Unix() >= c.Expiry {
		return nil, errors.New("baseline: token expired")
	}
	return &c, nil
}

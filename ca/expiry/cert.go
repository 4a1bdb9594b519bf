package expiry

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Source says where a certificate or CRL was found.
type Source struct {
	// Kind is KindFile, KindSecret, KindConfigMap or KindHTTP.
	Kind string `json:"kind"`
	// Namespace is the Kubernetes object's namespace; empty for files and URLs.
	Namespace string `json:"namespace,omitempty"`
	// Name is the object's name, the directory holding the file, or the URL.
	Name string `json:"name"`
	// Key is the object's data key or the file's name; empty for a whole set.
	Key string `json:"key,omitempty"`
}

// The kinds of Source.
const (
	KindFile      = "file"
	KindSecret    = "secret"
	KindConfigMap = "configmap"
	KindHTTP      = "http"
)

// String returns a short human form: "dir/key", "secret ns/name key", or the URL.
func (s Source) String() string {
	switch s.Kind {
	case KindFile:
		if s.Key == "" {
			return s.Name
		}
		return strings.TrimSuffix(s.Name, "/") + "/" + s.Key
	case KindHTTP:
		return s.Name
	}
	out := s.Kind + " " + s.Namespace + "/" + s.Name
	if s.Key != "" {
		out += " " + s.Key
	}
	return out
}

// withKey returns s with Key set.
func (s Source) withKey(key string) Source { s.Key = key; return s }

// ProblemKind classifies what a check found wrong.
type ProblemKind string

// The problems a scan reports. Expiry is not among them: it depends on the time of the report (see Report).
const (
	// ProblemChain: the certificate does not chain, by signatures, to a root of its set.
	ProblemChain ProblemKind = "chain_unverified"
	// ProblemKeyMismatch: the set's private key is not the certificate's key.
	ProblemKeyMismatch ProblemKind = "key_mismatch"
	// ProblemCRLSignature: the CRL is not signed by the CA of its set that it names as issuer.
	ProblemCRLSignature ProblemKind = "crl_signature"
	// ProblemUnparsable: a PEM block (certificate, CRL or private key) could not be parsed.
	ProblemUnparsable ProblemKind = "unparsable"
	// ProblemUnreadable: the file, directory, object or URL could not be read.
	ProblemUnreadable ProblemKind = "unreadable"
)

// Problem is one failed check.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	// Detail is a short explanation, at most maxDetail bytes.
	Detail string `json:"detail,omitempty"`
}

// SourceProblem is a problem of a source as a whole (unreadable, unparsable), not of one certificate.
type SourceProblem struct {
	Source Source `json:"source"`
	Problem
}

// Cert is one certificate found by a scan. It holds no private key material.
type Cert struct {
	Source    Source    `json:"source"`
	Subject   string    `json:"subject"`
	SPIFFEID  string    `json:"spiffe_id,omitempty"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"` // lower-case hex, as meshca_ca_cert_expiration_timestamp_seconds
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	KeyType   string    `json:"key_type"`
	IsCA      bool      `json:"is_ca"`
	Problems  []Problem `json:"problems,omitempty"`
}

// Name returns the SPIFFE ID when the certificate has one, else its subject.
func (c *Cert) Name() string {
	if c.SPIFFEID != "" {
		return c.SPIFFEID
	}
	return c.Subject
}

// CRL is one certificate revocation list found by a scan.
type CRL struct {
	Source     Source    `json:"source"`
	Issuer     string    `json:"issuer"`
	Number     string    `json:"number,omitempty"` // decimal CRL number (RFC 5280 §5.2.3)
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"` // zero when the CRL has none
	Revoked    int       `json:"revoked"`
	Problems   []Problem `json:"problems,omitempty"`
}

// Limits that keep what a scan reads and reports bounded, whatever the input.
const (
	maxDetail    = 200     // bytes of a problem's detail
	maxLabel     = 128     // bytes of a free-text label value (subject, issuer, path)
	maxBlocks    = 1000    // PEM blocks read from one key
	maxKeyBytes  = 4 << 20 // bytes read from one file or data key
	maxChainHops = 10
)

// newCert describes c as found at src.
func newCert(src Source, c *x509.Certificate) Cert {
	out := Cert{Source: src, Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		Serial: fmt.Sprintf("%x", c.SerialNumber), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		KeyType: KeyType(c.PublicKey), IsCA: c.BasicConstraintsValid && c.IsCA}
	for _, u := range c.URIs {
		if u.Scheme == "spiffe" {
			out.SPIFFEID = bound(u.String(), 2048)
			break
		}
	}
	return out
}

// newCRL describes rl as found at src.
func newCRL(src Source, rl *x509.RevocationList) CRL {
	out := CRL{
		Source:     src,
		Issuer:     rl.Issuer.String(),
		ThisUpdate: rl.ThisUpdate.UTC(),
		NextUpdate: rl.NextUpdate.UTC(),
		Revoked:    len(rl.RevokedCertificateEntries),
	}
	if rl.NextUpdate.IsZero() {
		out.NextUpdate = time.Time{}
	}
	if rl.Number != nil {
		out.Number = rl.Number.String()
	}
	return out
}

// KeyType names a public key's algorithm and size: "RSA-2048", "ECDSA-P256", "Ed25519".
func KeyType(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA-" + strings.ReplaceAll(k.Curve.Params().Name, "-", "")
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// parsed is what one PEM file or data key holds.
type parsed struct {
	certs []*x509.Certificate
	crls  []*x509.RevocationList
	keys  []crypto.PublicKey // public halves of the private keys found (dropped at once), and public keys
}

// parsePEM reads the certificates, CRLs and private keys of one PEM document. Other block types are ignored;
// a block that fails to parse is reported and skipped.
func parsePEM(src Source, data []byte) (parsed, []SourceProblem) {
	var p parsed
	var probs []SourceProblem
	bad := func(what string, err error) {
		probs = append(probs, SourceProblem{Source: src, Problem: Problem{Kind: ProblemUnparsable,
			Detail: bound(what+": "+err.Error(), maxDetail)}})
	}
	for n := 0; n < maxBlocks; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				bad("certificate", err)
				continue
			}
			p.certs = append(p.certs, c)
		case "X509 CRL":
			rl, err := x509.ParseRevocationList(b.Bytes)
			if err != nil {
				bad("CRL", err)
				continue
			}
			p.crls = append(p.crls, rl)
		case "PUBLIC KEY": // a private key whose public half is all a scanner kept (kubescan strips Secrets)
			pub, err := x509.ParsePKIXPublicKey(b.Bytes)
			if err != nil {
				bad("public key", err)
				continue
			}
			p.keys = append(p.keys, pub)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			pub, err := publicOf(b)
			if err != nil {
				bad("private key", err)
				continue
			}
			p.keys = append(p.keys, pub)
		}
	}
	return p, probs
}

// publicOf parses a private key block and returns only its public key.
func publicOf(b *pem.Block) (crypto.PublicKey, error) {
	var key any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return s.Public(), nil
}

// bound truncates s to at most n bytes of valid UTF-8, marking a cut with "…".
func bound(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	s = s[:n-len("…")]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// StripPrivateKeys returns data with every private key PEM block replaced by a PUBLIC KEY block of its public
// half, and whether it changed anything. A scanner that keeps objects in memory (an informer's cache) uses it
// so it holds no private keys; the key check still works on the public half. A private key that cannot be
// parsed is replaced by an empty PRIVATE KEY block, which the scan reports as unparsable.
func StripPrivateKeys(data []byte) ([]byte, bool) {
	if !bytes.Contains(data, []byte("PRIVATE KEY-----")) {
		return data, false
	}
	var out bytes.Buffer
	rest := data
	for n := 0; n < maxBlocks; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			pem.Encode(&out, &pem.Block{Type: b.Type, Bytes: b.Bytes})
			continue
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" { // never checked (no passphrase); dropped
			continue
		}
		b.Headers = nil
		if pub, err := publicOf(b); err == nil {
			if der, err := x509.MarshalPKIXPublicKey(pub); err == nil {
				pem.Encode(&out, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
				continue
			}
		}
		pem.Encode(&out, &pem.Block{Type: "PRIVATE KEY"})
	}
	return out.Bytes(), true
}

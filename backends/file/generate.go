package file

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/meshca/meshca/csr/composite"
)

// GenerateOptions describes a CA hierarchy to create with Generate.
type GenerateOptions struct {
	// Organization goes in both subjects, e.g. the trust domain. Default "meshca".
	Organization string
	// RootTTL and IntermediateTTL are the lifetimes; defaults 10 years and 1 year.
	RootTTL, IntermediateTTL time.Duration
	// Now is the issuance time; default time.Now().
	Now time.Time
	// Root, when set with RootKey, signs the intermediate instead of a new self-signed root.
	Root    *x509.Certificate
	RootKey crypto.Signer
	// RootCRL also makes an empty CRL of the root, valid until the intermediate expires, which WriteDir writes
	// to ca-crl.pem: the CRL an offline root's operator provides, so that Envoy's CRL_CHECK_ALL finds one for
	// every CA of the chain (meshca signs the intermediate's).
	RootCRL bool
	// IntermediateKey, when set, is the intermediate's key (e.g. RSA, as many enterprise PKIs use); default a
	// new key from NewKey.
	IntermediateKey crypto.Signer
	// NewKey makes the new keys (root and intermediate), e.g. NewMLDSA65Key or NewCompositeKey; default ECDSA
	// P-256. A composite hierarchy cannot have RootCRL.
	NewKey func() (crypto.Signer, error)
}

// Generated is a root and an intermediate CA, with keys, as Generate made them.
type Generated struct {
	Root             *x509.Certificate
	RootKey          crypto.Signer
	Intermediate     *x509.Certificate
	IntermediateKey  crypto.Signer
	RootPEM, CertPEM []byte
	KeyPEM           []byte
	// CRLPEM is the root's CRL when GenerateOptions.RootCRL was set, else empty.
	CRLPEM []byte
}

// Generate creates a root (unless opts.Root is given) and an intermediate signed by it, with ECDSA P-256 keys
// unless opts.NewKey says otherwise. It is meant for development and tests; production CAs come from the
// organisation's PKI.
func Generate(opts GenerateOptions) (*Generated, error) {
	if opts.Organization == "" {
		opts.Organization = "meshca"
	}
	if opts.RootTTL == 0 {
		opts.RootTTL = 10 * 365 * 24 * time.Hour
	}
	if opts.IntermediateTTL == 0 {
		opts.IntermediateTTL = 365 * 24 * time.Hour
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.NewKey == nil {
		opts.NewKey = func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
	}
	now := opts.Now.Add(-time.Minute).Truncate(time.Second).UTC()
	g := &Generated{Root: opts.Root, RootKey: opts.RootKey}
	if g.Root == nil {
		key, err := opts.NewKey()
		if err != nil {
			return nil, err
		}
		subject := pkix.Name{Organization: []string{opts.Organization}, CommonName: opts.Organization + " root CA"}
		tmpl := caTemplate(subject,
			now, now.Add(opts.RootTTL), 1)
		der, err := createCertificate(tmpl, tmpl, key.Public(), key)
		if err != nil {
			return nil, fmt.Errorf("creating root: %w", err)
		}
		if g.Root, err = x509.ParseCertificate(der); err != nil {
			return nil, err
		}
		g.RootKey = key
	}
	var key crypto.Signer = opts.IntermediateKey
	if key == nil {
		k, err := opts.NewKey()
		if err != nil {
			return nil, err
		}
		key = k
	}
	notAfter := now.Add(opts.IntermediateTTL)
	if notAfter.After(g.Root.NotAfter) {
		notAfter = g.Root.NotAfter
	}
	subject := pkix.Name{Organization: []string{opts.Organization}, CommonName: opts.Organization + " intermediate CA"}
	tmpl := caTemplate(subject,
		now, notAfter, 0)
	der, err := createCertificate(tmpl, g.Root, key.Public(), g.RootKey)
	if err != nil {
		return nil, fmt.Errorf("creating intermediate: %w", err)
	}
	if g.Intermediate, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	g.IntermediateKey = key
	keyDER, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	g.RootPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.Root.Raw})
	g.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.Intermediate.Raw})
	g.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if _, ok := g.RootKey.(*composite.PrivateKey); ok && opts.RootCRL {
		return nil, errors.New("RootCRL: crypto/x509 cannot sign a CRL with a composite key")
	}
	if opts.RootCRL {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
			ThisUpdate: now, NextUpdate: notAfter}, g.Root, g.RootKey)
		if err != nil {
			return nil, fmt.Errorf("creating the root's CRL: %w", err)
		}
		g.CRLPEM = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	return g, nil
}

// WriteDir writes g in the cacerts layout into dir, creating it. The key file is 0600. Each file is written to
// a temporary name and renamed, so a watcher never sees a half-written file.
func (g *Generated) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CAKeyFile, g.KeyPEM, 0o600},
		{CACertFile, g.CertPEM, 0o644},
		{CertChainFile, bytes.Join([][]byte{g.CertPEM, g.RootPEM}, nil), 0o644},
		{RootCertFile, g.RootPEM, 0o644},
	}
	if len(g.CRLPEM) > 0 {
		files = append(files, struct {
			name string
			data []byte
			mode os.FileMode
		}{CRLFile, g.CRLPEM, 0o644})
	}
	for _, f := range files {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			return err
		}
	}
	return nil
}

// Init creates a new dev CA in dir unless dir already holds ca-cert.pem; it reports whether it wrote one.
func Init(dir string, opts GenerateOptions) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	g, err := Generate(opts)
	if err != nil {
		return false, err
	}
	return true, g.WriteDir(dir)
}

func caTemplate(subject pkix.Name, notBefore, notAfter time.Time, maxPathLen int) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, serialLimit)
	return &x509.Certificate{
		SerialNumber:          serial.SetBit(serial, 127, 1),
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
	}
}

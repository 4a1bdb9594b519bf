package file

import (
	"bytes"
	"context"
	"crypto"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	"github.com/meshca/meshca/csr/composite"
)

// caKind is the kind of key a CA signs with, and so the kind of CSR key it certifies: the CSR's key type picks
// the PKI.
type caKind int

const (
	kindClassical caKind = iota
	kindMLDSA
	kindComposite
)

func (k caKind) String() string {
	return [...]string{"classical", "ML-DSA", "composite"}[k]
}

// needs says which configuration key provides a CA of kind k.
func (k caKind) needs() string {
	switch k {
	case kindMLDSA:
		return "an ML-DSA key needs mldsaDir"
	case kindComposite:
		return "a composite key needs compositeDir (and issuance.experimentalComposite)"
	}
	return "a classical key needs dir or secret"
}

func kindOfKey(pub crypto.PublicKey) caKind {
	switch pub.(type) {
	case *mldsa.PublicKey:
		return kindMLDSA
	case *composite.PublicKey:
		return kindComposite
	}
	return kindClassical
}

// kind is the kind of the active CA.
func (b *Backend) kind() caKind { return kindOfKey(b.current.Load().signer.Public()) }

// caFor returns the nested CA that signs keys of kind k, or nil.
func (b *Backend) caFor(k caKind) *Backend {
	switch k {
	case kindMLDSA:
		return b.mldsa
	case kindComposite:
		return b.hybrid
	}
	return nil
}

// newComposite loads the composite CA of cfg.CompositeDir as a backend of its own (watched and reloaded like
// Dir); it must hold a composite key, so that another CA is never mistaken for it.
func newComposite(ctx context.Context, cfg Config) (*Backend, error) {
	sub := cfg
	sub.Dir, sub.MLDSADir, sub.CompositeDir, sub.Registerer = cfg.CompositeDir, "", "", nil
	sub.CRLDistributionPoints, sub.NextDir, sub.SigningRoot = nil, "", nil
	sub.Logger = cfg.Logger.With("ca", "composite")
	b, err := New(ctx, sub)
	if err != nil {
		return nil, fmt.Errorf("file: compositeDir: %w", err)
	}
	if b.kind() != kindComposite {
		_ = b.Close()
		return nil, fmt.Errorf("file: compositeDir: %w: %s holds a %s key, not a composite one", ErrInvalidCA,
			CAKeyFile, b.kind())
	}
	return b, nil
}

// CompositeRoots returns the roots of the composite CA (CompositeDir), or none.
func (b *Backend) CompositeRoots(ctx context.Context) ([]*x509.Certificate, error) {
	if b.hybrid == nil {
		return nil, nil
	}
	return b.hybrid.Roots(ctx)
}

// NewCompositeKey returns a new composite ML-DSA-65 + ECDSA-P256 key (id-MLDSA65-ECDSA-P256-SHA512), for
// GenerateOptions.NewKey.
func NewCompositeKey() (crypto.Signer, error) {
	return composite.GenerateKey(composite.MLDSA65ECDSAP256SHA512(), nil)
}

// createCertificate signs tmpl for pub with the authority's key: crypto/x509 for classical and ML-DSA CAs,
// csr/composite for a composite one. Both check the signature they made against the CA's key.
func (a *authority) createCertificate(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	return createCertificate(tmpl, a.cert, pub, a.signer)
}

func createCertificate(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) ([]byte, error) {
	if k, ok := key.(*composite.PrivateKey); ok {
		return composite.CreateCertificate(rand.Reader, tmpl, parent, pub, k)
	}
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
}

// marshalKey encodes key as PKCS #8: the draft's encoding for composite keys (Section 6.3).
func marshalKey(key crypto.Signer) ([]byte, error) {
	if k, ok := key.(*composite.PrivateKey); ok {
		return composite.MarshalPKCS8PrivateKey(k)
	}
	return x509.MarshalPKCS8PrivateKey(key)
}

// parseCompositeSigner is parseCompositeKey as a crypto.Signer, for parseAuthority.
func parseCompositeSigner(b []byte) (crypto.Signer, error) {
	k, err := parseCompositeKey(b)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// parseCompositeKey reads the first PEM "PRIVATE KEY" block of b as a composite PKCS #8 key.
func parseCompositeKey(b []byte) (*composite.PrivateKey, error) {
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			return nil, fmt.Errorf("no PEM PRIVATE KEY (PKCS #8) found")
		}
		if block.Type != "PRIVATE KEY" {
			continue
		}
		k, err := composite.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		ck, ok := k.(*composite.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("a %T key where a composite CA certificate needs a composite key", k)
		}
		return ck, nil
	}
}

// buildCompositeChain orders caCert, the CAs of cert-chain.pem above it and the root of root-cert.pem it
// chains to, leaf-most first, following issuer names and signatures, then checks the whole path with
// composite.VerifyChain (the composite counterpart of buildChain's x509 Verify).
func buildCompositeChain(caCert *x509.Certificate, inters, roots []*x509.Certificate, now time.Time) (
	[]*x509.Certificate, error) {
	chain := []*x509.Certificate{caCert}
	candidates := append(slices.Clone(roots), inters...)
	for cur := caCert; !slices.ContainsFunc(roots, cur.Equal); {
		if len(chain) > 8 {
			return nil, fmt.Errorf("%w: %s: no root within 8 certificates", ErrInvalidCA, CACertFile)
		}
		next := slices.IndexFunc(candidates, func(c *x509.Certificate) bool {
			if !bytes.Equal(c.RawSubject, cur.RawIssuer) || slices.ContainsFunc(chain, c.Equal) {
				return false
			}
			key, err := composite.ParsePKIXPublicKey(c.RawSubjectPublicKeyInfo)
			return err == nil && composite.VerifyCertificateSignature(cur.Raw, key) == nil
		})
		if next < 0 {
			return nil, fmt.Errorf("%w: %s does not chain to %s through %s: no composite CA signed %q",
				ErrInvalidCA, CACertFile, RootCertFile, CertChainFile, cur.Subject.String())
		}
		cur = candidates[next]
		chain = append(chain, cur)
	}
	if len(chain) == 1 { // the signing CA is a root itself
		return chain, nil
	}
	if err := composite.VerifyChain(chain, roots, now); err != nil {
		return nil, fmt.Errorf("%w: %s does not chain to %s: %w", ErrInvalidCA, CACertFile, RootCertFile, err)
	}
	if err := checkSigningPathLen(chain); err != nil {
		return nil, err
	}
	return chain, nil
}

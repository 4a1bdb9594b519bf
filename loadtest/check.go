package loadtest

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/meshca/meshca/csr/composite"
)

// check verifies a CreateCertificate response the way a careful agent would: at least two certificates, leaf
// first and root last (istio-agent needs both), the leaf for exactly the requested SPIFFE ID and the CSR's key,
// and the chain verifying to roots with the last element as its anchor (a composite chain: to compositeRoots,
// with composite.VerifyChain).
func check(chainPEM []string, wantID string, pub crypto.PublicKey, roots *x509.CertPool,
	compositeRoots []*x509.Certificate) error {
	var certs []*x509.Certificate
	for _, el := range chainPEM {
		rest := []byte(el)
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				return fmt.Errorf("chain holds a %q PEM block", b.Type)
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return fmt.Errorf("chain: %w", err)
			}
			certs = append(certs, c)
		}
	}
	if len(certs) < 2 {
		return fmt.Errorf("chain has %d certificates, want at least 2 (leaf .. root)", len(certs))
	}
	leaf := certs[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != wantID {
		return fmt.Errorf("leaf URI SANs %v, want exactly [%s]", leaf.URIs, wantID)
	}
	if cpub, ok := pub.(*composite.PublicKey); ok { // crypto/x509 can neither read the key nor verify the chain
		if k, err := composite.ParsePKIXPublicKey(leaf.RawSubjectPublicKeyInfo); err != nil || !cpub.Equal(k) {
			return errors.New("leaf public key is not the CSR's")
		}
		if err := composite.VerifyChain(certs, compositeRoots, time.Now()); err != nil {
			return fmt.Errorf("composite chain does not verify to the composite roots: %w", err)
		}
		return nil
	}
	if k, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(pub) {
		return errors.New("leaf public key is not the CSR's")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(
		x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}},
	)
	if err != nil {
		return fmt.Errorf("chain does not verify to the roots: %w", err)
	}
	last := certs[len(certs)-1].Raw
	for _, ch := range chains {
		if bytes.Equal(ch[len(ch)-1].Raw, last) {
			return nil
		}
	}
	return errors.New("last chain element is not the root the chain verifies to")
}

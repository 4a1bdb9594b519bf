package csr

import (
	"crypto/x509"
	"fmt"

	"github.com/meshca/meshca/csr/composite"
)

// compositeKeyType is the KeyType of the one composite algorithm meshca accepts.
const compositeKeyType = "MLDSA65-ECDSA-P256"

// parseComposite applies ParseRaw's rules to a composite CSR whose self-signature csr/composite has verified:
// only id-MLDSA65-ECDSA-P256-SHA512 keys (ErrKeyPolicy for the draft's other combinations), every attribute
// accounted for, and the same extension allow-list.
func parseComposite(c *x509.CertificateRequest) (*Request, error) {
	pub := c.PublicKey.(*composite.PublicKey)
	if pub.Algorithm() != composite.MLDSA65ECDSAP256SHA512() {
		return nil, fmt.Errorf("%w: composite key %s; meshca accepts only %s", ErrKeyPolicy, pub.Algorithm(),
			composite.MLDSA65ECDSAP256SHA512())
	}
	exts, err := extensionRequest(c.RawTBSCertificateRequest)
	if err != nil {
		return nil, err
	}
	isCA, err := checkExtensions(exts, pub)
	if err != nil {
		return nil, err
	}
	return &Request{CSR: c, PublicKey: pub, KeyType: compositeKeyType, IsCA: isCA,
		HasSubject: len(c.RawSubject) > 2}, nil
}

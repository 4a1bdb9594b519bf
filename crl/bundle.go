package crl

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// pemType is the PEM block type of a CRL (RFC 7468 §5).
const pemType = "X509 CRL"

// ParseBundle parses a ca-crl.pem: zero or more PEM "X509 CRL" blocks, as Istio's cacerts and the
// istio-ca-crl ConfigMap hold them. Empty or blank input is no CRL (istiod's convention for "none"). Any other
// block type, a CRL that does not parse, or non-blank text between or after the blocks is an error: a file
// that is partly wrong is refused whole, never half-used.
func ParseBundle(data []byte) ([]*x509.RevocationList, error) {
	var out []*x509.RevocationList
	rest := data
	for len(bytes.TrimSpace(rest)) > 0 {
		block, next := pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("crl: %w: text that is not a PEM block after CRL %d", ErrBadCRL, len(out))
		}
		skipped := bytes.TrimLeft(rest[:len(rest)-len(next)], " \t\r\n")
		if !bytes.HasPrefix(skipped, []byte("-----BEGIN")) {
			return nil, fmt.Errorf("crl: %w: text before PEM block %d", ErrBadCRL, len(out)+1)
		}
		if block.Type != pemType {
			return nil, fmt.Errorf("crl: %w: PEM block %d is %.40q, not %q", ErrBadCRL, len(out)+1, block.Type, pemType)
		}
		if len(block.Headers) > 0 {
			return nil, fmt.Errorf("crl: %w: PEM block %d has headers", ErrBadCRL, len(out)+1)
		}
		list, err := x509.ParseRevocationList(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("crl: %w: PEM block %d: %v", ErrBadCRL, len(out)+1, err)
		}
		out = append(out, list)
		rest = next
	}
	return out, nil
}

// EncodeBundle concatenates DER CRLs as PEM "X509 CRL" blocks, in the given order. No CRL gives an empty
// result, which is what istio-agent and ztunnel read as "no CRL".
func EncodeBundle(ders ...[]byte) []byte {
	var b bytes.Buffer
	for _, der := range ders {
		_ = pem.Encode(&b, &pem.Block{Type: pemType, Bytes: der})
	}
	return b.Bytes()
}

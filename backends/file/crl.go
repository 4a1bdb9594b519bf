package file

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/meshca/meshca/crl"
)

// ErrInvalidCRL means the cacerts ca-crl.pem was refused: it does not parse, or holds a CRL that no CA of the
// served chain signed. The CA itself still loads and signs; only the CRLs are refused.
var ErrInvalidCRL = errors.New("invalid ca-crl.pem")

// checkCRLs checks the ca-crl.pem content b against chain (signing CA first, root last): zero or more PEM CRLs,
// each issued and signed by one CA of chain. A file that is partly wrong is refused whole. It returns the
// content re-encoded (blank input gives an empty result: no CRL).
func checkCRLs(b []byte, chain []*x509.Certificate) ([]byte, error) {
	lists, err := crl.ParseBundle(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCRL, err)
	}
	ders := make([][]byte, 0, len(lists))
	for n, l := range lists {
		if !signedByChain(l, chain) {
			return nil, fmt.Errorf("%w: CRL %d (issuer %s) is not signed by %s or a CA above it (%s, %s)",
				ErrInvalidCRL, n+1, bounded(l.Issuer.String()), CACertFile, CertChainFile, RootCertFile)
		}
		ders = append(ders, l.Raw)
	}
	return crl.EncodeBundle(ders...), nil
}

func signedByChain(l *x509.RevocationList, chain []*x509.Certificate) bool {
	for _, ca := range chain {
		if crl.Matches(l, ca) {
			return true
		}
	}
	return false
}

func bounded(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// CRLBundle returns the CRLs of the cacerts ca-crl.pem (empty when it is missing or blank), each checked to be
// signed by a CA of the served chain: the signing CA, an intermediate above it or the root, so a root-signed
// CRL alone is accepted. When the current ca-crl.pem was refused it returns an error wrapping ErrInvalidCRL;
// unlike istiod (istio#61075), the CA certificates and key of the same set are in use regardless, and a blank
// ca-crl.pem withdraws the CRLs (istio#61073).
func (b *Backend) CRLBundle(context.Context) ([]byte, error) {
	a := b.activeOrCurrent()
	if a.crlErr != nil {
		return nil, fmt.Errorf("file: %s: %w", b.origin, a.crlErr)
	}
	return bytes.Clone(a.crlPEM), nil
}

package trustbundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
)

// Source provides the trust anchors to publish. *ca.Issuer satisfies it.
type Source interface {
	// Roots returns the current roots; during a CA rotation there are several.
	Roots(ctx context.Context) ([]*x509.Certificate, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) ([]*x509.Certificate, error)

// Roots calls f.
func (f SourceFunc) Roots(ctx context.Context) ([]*x509.Certificate, error) { return f(ctx) }

// ErrInvalidRoots means the source's roots cannot be published: none, or one that is not a CA.
var ErrInvalidRoots = errors.New("trustbundle: roots cannot be published")

// MaxBundleSize is the largest trustBundle a ClusterTrustBundle accepts.
const MaxBundleSize = 1 << 20

// Encode returns roots as a PEM bundle that meets the ClusterTrustBundle rules: only CERTIFICATE blocks without
// headers, each a CA certificate with valid basic constraints, no duplicates, at most MaxBundleSize bytes. The
// order is by NotBefore, then by SHA-256 of the DER, so it does not depend on the order of roots. A root that
// is not a CA is an error wrapping ErrInvalidRoots, not silently dropped: it means the CA is misconfigured.
func Encode(roots []*x509.Certificate) ([]byte, error) {
	type entry struct {
		cert *x509.Certificate
		sum  [sha256.Size]byte
	}
	var entries []entry
	var errs []error
	for _, c := range roots {
		if c == nil {
			continue
		}
		sum := sha256.Sum256(c.Raw)
		if !c.IsCA || !c.BasicConstraintsValid {
			errs = append(
				errs,
				fmt.Errorf(
					"%w: %q (sha256 %x) is not a CA certificate (basic constraints with the CA bit are required)",
					ErrInvalidRoots,
					c.Subject.String(),
					sum[:8],
				),
			)
			continue
		}
		if !slices.ContainsFunc(entries, func(e entry) bool { return e.sum == sum }) {
			entries = append(entries, entry{c, sum})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: the source returned no roots", ErrInvalidRoots)
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := a.cert.NotBefore.Compare(b.cert.NotBefore); c != 0 {
			return c
		}
		return bytes.Compare(a.sum[:], b.sum[:])
	})
	var buf bytes.Buffer
	for _, e := range entries {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: e.cert.Raw})
	}
	if buf.Len() > MaxBundleSize {
		return nil, fmt.Errorf("%w: %d roots take %d bytes, more than a ClusterTrustBundle holds (%d)",
			ErrInvalidRoots, len(entries), buf.Len(), MaxBundleSize)
	}
	return buf.Bytes(), nil
}

// fingerprints returns short SHA-256 fingerprints of the certificates in a PEM bundle, for logs.
func fingerprints(bundle []byte) []string {
	var out []string
	for {
		var b *pem.Block
		b, bundle = pem.Decode(bundle)
		if b == nil {
			return out
		}
		sum := sha256.Sum256(b.Bytes)
		out = append(out, fmt.Sprintf("%x", sum[:8]))
	}
}

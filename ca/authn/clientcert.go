package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meshca/meshca/csr"
)

// ClientCert authenticates renewals: a caller presenting a valid certificate issued by this CA may renew
// exactly the identity in it.
type ClientCert struct {
	// Roots returns the CA's current trust anchors.
	Roots func(ctx context.Context) ([]*x509.Certificate, error)
	// IssuingCAs returns the CA certificates meshca signs workload certificates with (each backend's issuing
	// CA). A renewal certificate must have been signed by one of them, not merely chain to a root: a sibling
	// CA under the same enterprise root issues certificates meshca never vouched for.
	IssuingCAs func(ctx context.Context) ([]*x509.Certificate, error)
	// MaxLifetime is the longest lifetime meshca issues (issuance.maxTTL); a longer-lived certificate is not
	// one of meshca's and is refused.
	MaxLifetime time.Duration
	// TrustDomains are the accepted trust domains (the mesh's and its aliases).
	TrustDomains []string
	// Revocation, when set, checks the verified chain (leaf first, root last) against the revocation state of
	// meshca's CAs. An error refuses the certificate: one wrapping ErrUnavailable when the state is unknown (no
	// CRL, or one past its nextUpdate, and renewal fails closed), any other as revoked (ErrUnauthenticated).
	Revocation func(ctx context.Context, chain []*x509.Certificate) error
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
}

// Authenticate implements Authenticator.
func (c *ClientCert) Authenticate(ctx context.Context, req *Request) (*Caller, error) {
	if len(req.PeerCertificates) == 0 {
		return nil, ErrNoCredential
	}
	now := time.Now()
	if c.Clock != nil {
		now = c.Clock()
	}
	roots, err := c.Roots(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: loading roots: %v", ErrUnavailable, err)
	}
	var issuing []*x509.Certificate
	if c.IssuingCAs != nil {
		if issuing, err = c.IssuingCAs(ctx); err != nil {
			return nil, fmt.Errorf("%w: loading the issuing CAs: %v", ErrUnavailable, err)
		}
	}
	pool, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, ic := range append(issuing, req.PeerCertificates[1:]...) {
		inters.AddCert(ic)
	}
	leaf := req.PeerCertificates[0]
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, fmt.Errorf("%w: client certificate is not valid for this CA: %v", ErrUnauthenticated, err)
	}
	chain := chains[0]
	if c.IssuingCAs != nil {
		if chain = signedByOneOf(chains, issuing); chain == nil {
			return nil, fmt.Errorf("%w: client certificate was not issued by this CA's issuing CA",
				ErrUnauthenticated)
		}
	}
	// Backends backdate notBefore a little for clock skew; anything beyond that is not a certificate of ours.
	if life := leaf.NotAfter.Sub(leaf.NotBefore); c.MaxLifetime > 0 && life > c.MaxLifetime+maxBackdate {
		return nil, fmt.Errorf("%w: client certificate lives %s, longer than this CA issues (%s)",
			ErrUnauthenticated, life.Round(time.Second), c.MaxLifetime)
	}
	if leaf.IsCA || len(leaf.URIs) != 1 || len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		return nil, fmt.Errorf(
			"%w: client certificate must carry exactly one SPIFFE ID and no other SAN",
			ErrUnauthenticated,
		)
	}
	id, err := csr.ParseURI(leaf.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("%w: client certificate: %v", ErrUnauthenticated, err)
	}
	if !slices.Contains(c.TrustDomains, id.TrustDomain) {
		return nil, fmt.Errorf("%w: client certificate trust domain %q is not this mesh's", ErrUnauthenticated,
			id.TrustDomain)
	}
	if c.Revocation != nil {
		if err := c.Revocation(ctx, chain); errors.Is(err, ErrUnavailable) {
			return nil, fmt.Errorf("%w: revocation status of the client certificate: %w", ErrUnavailable, err)
		} else if err != nil {
			return nil, fmt.Errorf("%w: client certificate refused: %w", ErrUnauthenticated, err)
		}
	}
	return &Caller{Namespace: id.Namespace, ServiceAccount: id.ServiceAccount, Method: "client-cert",
		Issuer: id.TrustDomain, ExpiresAt: leaf.NotAfter}, nil
}

// maxBackdate is how far before issuance a backend may set notBefore (clock skew allowance).
const maxBackdate = 10 * time.Minute

// signedByOneOf returns the first verified chain that has one of cas as the leaf's direct issuer, or nil.
func signedByOneOf(chains [][]*x509.Certificate, cas []*x509.Certificate) []*x509.Certificate {
	for _, ch := range chains {
		for _, ca := range cas {
			if len(ch) > 1 && ch[1].Equal(ca) {
				return ch
			}
		}
	}
	return nil
}

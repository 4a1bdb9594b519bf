package authn

import (
	"context"
	"crypto/x509"
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
	// TrustDomains are the accepted trust domains (the mesh's and its aliases).
	TrustDomains []string
	// Revoked, when set, reports whether a certificate has been revoked.
	Revoked func(*x509.Certificate) bool
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
	pool, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, ic := range req.PeerCertificates[1:] {
		inters.AddCert(ic)
	}
	leaf := req.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%w: client certificate is not valid for this CA: %v", ErrUnauthenticated, err)
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
	if c.Revoked != nil && c.Revoked(leaf) {
		return nil, fmt.Errorf("%w: client certificate serial %x is revoked", ErrUnauthenticated, leaf.SerialNumber)
	}
	return &Caller{Namespace: id.Namespace, ServiceAccount: id.ServiceAccount, Method: "client-cert",
		Issuer: id.TrustDomain, ExpiresAt: leaf.NotAfter, ClusterID: req.ClusterID}, nil
}

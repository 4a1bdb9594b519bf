package authn_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/authn"
)

const edgeID = "spiffe://cluster.local/ns/default/sa/sleep"

// renewalCA is a root and an issuing CA under it, valid around now, and a ClientCert that trusts them.
type renewalCA struct {
	root, issuing testCA
	cc            *authn.ClientCert
}

func newRenewalCA(t *testing.T, now time.Time) *renewalCA {
	t.Helper()
	root := issue(t, caTemplate("root", now), nil)
	issuing := issue(t, caTemplate("issuing CA", now), &root)
	return &renewalCA{root: root, issuing: issuing, cc: &authn.ClientCert{
		Roots: func(context.Context) ([]*x509.Certificate, error) {
			return []*x509.Certificate{root.cert}, nil
		},
		IssuingCAs: func(context.Context) ([]*x509.Certificate, error) {
			return []*x509.Certificate{issuing.cert}, nil
		},
		MaxLifetime:  24 * time.Hour,
		TrustDomains: []string{"cluster.local"},
		Clock:        func() time.Time { return now },
	}}
}

// leaf issues a workload certificate for edgeID from the issuing CA, edited by mod, and returns its chain.
func (r *renewalCA) leaf(t *testing.T, now time.Time, o leafOpts, mod func(*x509.Certificate)) []*x509.Certificate {
	t.Helper()
	if o.id == "" {
		o.id = edgeID
	}
	tmpl := leafTemplate(o, now)
	if mod != nil {
		mod(tmpl)
	}
	return []*x509.Certificate{issue(t, tmpl, &r.issuing).cert, r.issuing.cert}
}

// TestClientCertEdges: the lifetime bound is inclusive of the backdating allowance, every kind of extra SAN is
// refused, and the issuing-CA check stands on its own (no revocation check behind it).
func TestClientCertEdges(t *testing.T) {
	now := time.Now()
	ca := newRenewalCA(t, now)
	ips := func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.IPv4(10, 0, 0, 1)} }
	tests := []struct {
		name    string
		chain   []*x509.Certificate
		wantErr error
	}{
		{"a certificate living maxTTL plus the 10m backdating allowance renews",
			ca.leaf(t, now, leafOpts{life: 24*time.Hour + 10*time.Minute}, nil), nil},
		{"a certificate living a second longer is refused",
			ca.leaf(t, now, leafOpts{life: 24*time.Hour + 10*time.Minute + time.Second}, nil),
			authn.ErrUnauthenticated},
		{"a certificate with a DNS and an IP SAN is refused",
			ca.leaf(t, now, leafOpts{dns: []string{"sleep.default.svc"}}, ips), authn.ErrUnauthenticated},
		{"a certificate with an IP and an email SAN is refused", ca.leaf(t, now, leafOpts{}, func(c *x509.Certificate) {
			ips(c)
			c.EmailAddresses = []string{"sleep@example.com"}
		}), authn.ErrUnauthenticated},
		{"a certificate from a sibling CA is refused without a revocation check", func() []*x509.Certificate {
			sibling := issue(t, caTemplate("sibling CA", now), &ca.root)
			l := issue(t, leafTemplate(leafOpts{id: edgeID}, now), &sibling)
			return []*x509.Certificate{l.cert, sibling.cert}
		}(), authn.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller, err := ca.cc.Authenticate(context.Background(), &authn.Request{PeerCertificates: tt.chain})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Authenticate = %+v, %v; want %v", caller, err, tt.wantErr)
			}
		})
	}
}

// TestClientCertWithoutMaxLifetimeChecksNoLifetime: MaxLifetime 0 means no lifetime bound (New always sets one).
func TestClientCertWithoutMaxLifetimeChecksNoLifetime(t *testing.T) {
	now := time.Now()
	ca := newRenewalCA(t, now)
	ca.cc.MaxLifetime = 0
	chain := ca.leaf(t, now, leafOpts{life: 48 * time.Hour}, nil)
	if _, err := ca.cc.Authenticate(context.Background(), &authn.Request{PeerCertificates: chain}); err != nil {
		t.Fatalf("a 48h certificate without MaxLifetime: %v, want it to renew", err)
	}
}

// TestClientCertUsesItsClock: validity is judged at Clock's time when set, else at the real time.
func TestClientCertUsesItsClock(t *testing.T) {
	then := time.Date(2020, 6, 1, 12, 0, 0, 0, time.UTC)
	past := newRenewalCA(t, then)
	chain := past.leaf(t, then, leafOpts{}, nil)
	if _, err := past.cc.Authenticate(context.Background(), &authn.Request{PeerCertificates: chain}); err != nil {
		t.Fatalf("a certificate valid at the clock's time (2020): %v, want it to renew", err)
	}
	now := time.Now()
	current := newRenewalCA(t, now)
	current.cc.Clock = nil
	chain = current.leaf(t, now, leafOpts{}, nil)
	if _, err := current.cc.Authenticate(context.Background(), &authn.Request{PeerCertificates: chain}); err != nil {
		t.Fatalf("without a clock, a certificate valid now: %v, want it to renew", err)
	}
}

// TestClientCertThatIsItsOwnTrustAnchorIsRefused: a self-signed workload certificate placed among the roots
// verifies as a chain of one; it was issued by none of meshca's issuing CAs, so it is refused.
func TestClientCertThatIsItsOwnTrustAnchorIsRefused(t *testing.T) {
	now := time.Now()
	ca := newRenewalCA(t, now)
	self := issue(t, leafTemplate(leafOpts{id: edgeID}, now), nil)
	ca.cc.Roots = func(context.Context) ([]*x509.Certificate, error) {
		return []*x509.Certificate{ca.root.cert, self.cert}, nil
	}
	caller, err := ca.cc.Authenticate(context.Background(), &authn.Request{PeerCertificates: []*x509.Certificate{
		self.cert}})
	if !errors.Is(err, authn.ErrUnauthenticated) {
		t.Fatalf("Authenticate = %+v, %v; want ErrUnauthenticated", caller, err)
	}
}

package authn_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/authn"
)

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issue signs tmpl with parent (self-signed when parent is nil) and returns the certificate and its key.
func issue(t *testing.T, tmpl *x509.Certificate, parent *testCA) testCA {
	t.Helper()
	key := newKey(t)
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	signer, issuer := key, tmpl
	if parent != nil {
		signer, issuer = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{c, key}
}

func caTemplate(cn string, now time.Time) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
}

type leafOpts struct {
	id       string
	life     time.Duration
	dns      []string
	eku      []x509.ExtKeyUsage
	isCA     bool
	notAfter time.Time
}

func leafTemplate(o leafOpts, now time.Time) *x509.Certificate {
	u, _ := url.Parse(o.id)
	if o.life == 0 {
		o.life = time.Hour
	}
	if o.eku == nil {
		o.eku = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	na := now.Add(o.life - time.Minute)
	if !o.notAfter.IsZero() {
		na = o.notAfter
	}
	return &x509.Certificate{NotBefore: now.Add(-time.Minute), NotAfter: na, URIs: []*url.URL{u},
		DNSNames: o.dns, ExtKeyUsage: o.eku, KeyUsage: x509.KeyUsageDigitalSignature, IsCA: o.isCA,
		BasicConstraintsValid: true}
}

// TestClientCertRenewal: a renewal is authenticated only by a certificate meshca itself could have issued.
func TestClientCertRenewal(t *testing.T) {
	now := time.Now()
	root := issue(t, caTemplate("enterprise root", now), nil)
	issuing := issue(t, caTemplate("meshca issuing CA", now), &root)
	sibling := issue(t, caTemplate("another team's CA under the same root", now), &root)
	otherRoot := issue(t, caTemplate("another root", now), nil)
	const id = "spiffe://cluster.local/ns/default/sa/sleep"
	leaf := func(o leafOpts, by testCA) []*x509.Certificate {
		if o.id == "" {
			o.id = id
		}
		l := issue(t, leafTemplate(o, now), &by)
		return []*x509.Certificate{l.cert, by.cert}
	}
	revokedChain, unknownChain := leaf(leafOpts{}, issuing), leaf(leafOpts{}, issuing)
	errRevoked := errors.New("listed in the CRL")
	cc := &authn.ClientCert{
		Roots: func(context.Context) ([]*x509.Certificate, error) {
			return []*x509.Certificate{root.cert}, nil
		},
		IssuingCAs: func(context.Context) ([]*x509.Certificate, error) {
			return []*x509.Certificate{issuing.cert}, nil
		},
		MaxLifetime:  24 * time.Hour,
		TrustDomains: []string{"cluster.local", "old.example"},
		Revocation: func(_ context.Context, chain []*x509.Certificate) error {
			switch {
			case len(chain) != 3 || !chain[1].Equal(issuing.cert) || !chain[2].Equal(root.cert):
				return fmt.Errorf("checked chain of %d certificates, want the verified leaf, issuing CA, root",
					len(chain))
			case chain[0].Equal(revokedChain[0]):
				return errRevoked
			case chain[0].Equal(unknownChain[0]):
				return fmt.Errorf("no current CRL: %w", authn.ErrUnavailable)
			}
			return nil
		},
		Clock: func() time.Time { return now },
	}
	tests := []struct {
		name    string
		chain   []*x509.Certificate
		wantErr error
	}{
		{"a workload certificate from the issuing CA renews", leaf(leafOpts{}, issuing), nil},
		{"a certificate in a trust-domain alias renews",
			leaf(leafOpts{id: "spiffe://old.example/ns/default/sa/sleep"}, issuing), nil},
		{"no certificate is no credential of this kind", nil, authn.ErrNoCredential},
		{"a certificate from a sibling CA under the same root is refused", leaf(leafOpts{}, sibling),
			authn.ErrUnauthenticated},
		{"a certificate from another root is refused", leaf(leafOpts{}, otherRoot), authn.ErrUnauthenticated},
		{"a foreign trust domain is refused", leaf(leafOpts{id: "spiffe://evil.example/ns/default/sa/sleep"},
			issuing), authn.ErrUnauthenticated},
		{"a certificate with a DNS SAN is refused", leaf(leafOpts{dns: []string{"sleep.default.svc"}}, issuing),
			authn.ErrUnauthenticated},
		{"a certificate without clientAuth is refused",
			leaf(leafOpts{eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, issuing), authn.ErrUnauthenticated},
		{"a certificate living longer than maxTTL is refused", leaf(leafOpts{life: 48 * time.Hour}, issuing),
			authn.ErrUnauthenticated},
		{"a CA certificate is refused", leaf(leafOpts{isCA: true}, issuing), authn.ErrUnauthenticated},
		{"an expired certificate is refused", leaf(leafOpts{notAfter: now.Add(-time.Second)}, issuing),
			authn.ErrUnauthenticated},
		{"a revoked certificate is refused", revokedChain, errRevoked},
		{"a revoked certificate is unauthenticated", revokedChain, authn.ErrUnauthenticated},
		{"a certificate whose revocation status is unknown is refused as retryable", unknownChain,
			authn.ErrUnavailable},
		{"a leaf presented without its issuing CA but signed by it renews",
			leaf(leafOpts{}, issuing)[:1], nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller, err := cc.Authenticate(context.Background(), &authn.Request{PeerCertificates: tt.chain})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if caller.Namespace != "default" || caller.ServiceAccount != "sleep" || caller.Method != "client-cert" {
					t.Errorf("caller = %+v", caller)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || caller != nil {
				t.Fatalf("Authenticate = %+v, %v; want %v", caller, err, tt.wantErr)
			}
		})
	}
}

package e2e

import (
	"crypto/x509"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// verifyChain checks chain with crypto/x509 against root: leaf first, valid for client and server auth, with
// wantID as its only SAN.
func verifyChain(tb testing.TB, root *x509.Certificate, chain []*x509.Certificate, wantID string) {
	tb.Helper()
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inters.AddCert(c)
	}
	leaf := chain[0]
	for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters,
			KeyUsages:   []x509.ExtKeyUsage{eku},
			CurrentTime: leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)}); err != nil {
			tb.Errorf("serial %x does not verify to the mesh root for EKU %v: %v", leaf.SerialNumber, eku, err)
		}
	}
	if !chain[len(chain)-1].Equal(root) {
		tb.Errorf("serial %x: chain does not end with the mesh root", leaf.SerialNumber)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != wantID ||
		len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		tb.Errorf("serial %x: SANs URIs=%v DNS=%v IP=%v email=%v, want exactly the URI %s", leaf.SerialNumber,
			leaf.URIs, leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses, wantID)
	}
}

// verifySVID checks chain with go-spiffe's X.509-SVID verifier against a bundle holding only root, and that
// the SPIFFE ID it extracts is exactly wantID.
func verifySVID(tb testing.TB, root *x509.Certificate, chain []*x509.Certificate, wantID string) {
	tb.Helper()
	want := spiffeid.RequireFromString(wantID)
	bundle := x509bundle.FromX509Authorities(want.TrustDomain(), []*x509.Certificate{root})
	// go-spiffe verifies at the current time; a certificate seen earlier in a test may have expired since.
	leaf := chain[0]
	id, _, err := x509svid.Verify(
		chain,
		bundle,
		x509svid.WithTime(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore)/2)),
	)
	if err != nil {
		tb.Errorf("serial %x: go-spiffe x509svid.Verify: %v", leaf.SerialNumber, err)
		return
	}
	if id != want {
		tb.Errorf("serial %x: go-spiffe extracted SPIFFE ID %s, want %s", leaf.SerialNumber, id, want)
	}
}

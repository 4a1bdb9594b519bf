package composite_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
	"testing"

	"github.com/meshca/meshca/csr/composite"
)

func newCSR(tb testing.TB, key *composite.PrivateKey, exts ...pkix.Extension) []byte {
	tb.Helper()
	spiffe, _ := url.Parse("spiffe://cluster.local/ns/default/sa/sleep")
	der, err := composite.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{Organization: []string{"cluster.local"}},
		URIs:            []*url.URL{spiffe},
		DNSNames:        []string{"sleep.default.svc"},
		IPAddresses:     []net.IP{net.IPv4(10, 0, 0, 1)},
		ExtraExtensions: exts,
	}, key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func TestCSRRoundTrip(t *testing.T) {
	key := newKey(t, composite.MLDSA65ECDSAP256SHA512())
	critical := pkix.Extension{
		Id:       asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1},
		Critical: true,
		Value:    []byte{5, 0},
	}
	der := newCSR(t, key, critical)
	req, err := composite.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey().Equal(req.PublicKey) {
		t.Error("the request's key is not the signer's")
	}
	if len(req.URIs) != 1 || req.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/sleep" ||
		len(req.DNSNames) != 1 || req.DNSNames[0] != "sleep.default.svc" ||
		len(req.IPAddresses) != 1 || !req.IPAddresses[0].Equal(net.IPv4(10, 0, 0, 1)) {
		t.Errorf("SANs: %v %v %v", req.URIs, req.DNSNames, req.IPAddresses)
	}
	if len(req.Subject.Organization) != 1 || req.Subject.Organization[0] != "cluster.local" {
		t.Errorf("subject: %s", req.Subject)
	}
	found := false
	for _, e := range req.Extensions {
		found = found || (e.Id.Equal(critical.Id) && e.Critical && bytes.Equal(e.Value, critical.Value))
	}
	if !found {
		t.Errorf("the critical extension is missing from %v", req.Extensions)
	}
	if req.CheckSignature() == nil {
		t.Error("crypto/x509's CheckSignature accepts a composite request; it must fail closed")
	}
	leaf := newCA(t).issue(t, req.PublicKey)
	cert, err := x509.ParseCertificate(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if certified, err := composite.ParsePKIXPublicKey(cert.RawSubjectPublicKeyInfo); err != nil ||
		!key.PublicKey().Equal(certified) {
		t.Errorf("the leaf issued for the request certifies another key: %v", err)
	}
}

func TestParseCertificateRequestRefusals(t *testing.T) {
	key := newKey(t, composite.MLDSA65ECDSAP256SHA512())
	der := newCSR(t, key)
	other := newKey(t, composite.MLDSA65ECDSAP256SHA512())
	otherDER := newCSR(t, other)
	otherSPKI, _ := composite.MarshalPKIXPublicKey(other.PublicKey())
	mySPKI, _ := composite.MarshalPKIXPublicKey(key.PublicKey())
	swapped := bytes.Replace(bytes.Clone(der), mySPKI, otherSPKI, 1)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	classical, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(der, []byte("sleep"))
	tests := []struct {
		name    string
		der     []byte
		wantErr error
	}{
		{"a flipped bit in the signature", flipBit(der, len(der)-1), composite.ErrInvalidSignature},
		{"a flipped bit in the requested SAN", flipBit(der, i), composite.ErrInvalidSignature},
		{"a key swapped for another composite key", swapped, composite.ErrInvalidSignature},
		{"a classical request", classical, composite.ErrUnsupported},
		{"a signature algorithm with NULL parameters", withOuterAlgorithm(t, der, []int(key.Algorithm().OID()),
			[]byte{5, 0}), composite.ErrMalformed},
		{"a signature algorithm of another composite", withOuterAlgorithm(t, der,
			[]int(composite.MLDSA44ECDSAP256SHA256().OID()), nil), composite.ErrInvalidSignature},
		{"a truncated request", der[:len(der)-1], composite.ErrMalformed},
		{"trailing data", append(bytes.Clone(der), 0), composite.ErrMalformed},
		{"empty input", nil, composite.ErrMalformed},
	}
	if _, err := composite.ParseCertificateRequest(otherDER); err != nil {
		t.Fatalf("control request: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if _, err := composite.ParseCertificateRequest(tt.der); !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

package composite_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/meshca/meshca/csr/composite"
)

// csrOfSize returns a real composite request of exactly size bytes, padded with a private attribute. The ECDSA
// part of the signature varies by a byte or two, so the padding is adjusted until the size is met.
func csrOfSize(t *testing.T, key *composite.PrivateKey, size int) []byte {
	t.Helper()
	pad := size - len(handCSR(t, key)) - 32
	for range 50 {
		var b cryptobyte.Builder
		b.AddASN1OctetString(make([]byte, pad))
		der := handCSR(t, key, attribute(oidPrivate, b.BytesOrPanic()))
		if len(der) == size {
			return der
		}
		pad += size - len(der)
	}
	t.Fatalf("no request of %d bytes after 50 tries", size)
	return nil
}

// Certificates and requests of up to MaxSignedSize bytes are read, and not a byte more.
func TestSignedSizeBound(t *testing.T) {
	key := newKey(t, composite.MLDSA65ECDSAP256SHA512())
	tests := []struct {
		name    string
		size    int
		wantErr error
	}{
		{"a request of exactly MaxSignedSize bytes is read", composite.MaxSignedSize, nil},
		{"a request of MaxSignedSize+1 bytes is refused", composite.MaxSignedSize + 1, composite.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := composite.ParseCertificateRequest(csrOfSize(t, key, tt.size)); !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// A composite CA's subject key identifier is derived from its composite key (RFC 7093 method 1, as crypto/x509
// derives it for other keys) unless the template sets one; a composite leaf gets none, as crypto/x509's leaves.
func TestCreateCertificateSubjectKeyID(t *testing.T) {
	ca := newCA(t)
	leafKey := newKey(t, composite.MLDSA65ECDSAP256SHA512())
	sum := sha256.Sum256(leafKey.PublicKey().Bytes())
	tests := []struct {
		name       string
		isCA       bool
		subjectKey []byte
		want       []byte
	}{
		{"a composite CA without one gets the key's", true, nil, sum[:20]},
		{"a composite CA keeps the template's", true, []byte{1, 2, 3}, []byte{1, 2, 3}},
		{"a composite leaf gets none", false, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(5), Subject: pkix.Name{CommonName: "sub"},
				NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: tt.isCA,
				BasicConstraintsValid: true, SubjectKeyId: tt.subjectKey}
			der, err := composite.CreateCertificate(rand.Reader, tmpl, ca.cert, leafKey.PublicKey(), ca.key)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(cert.SubjectKeyId, tt.want) {
				t.Errorf("SubjectKeyId %x, want %x", cert.SubjectKeyId, tt.want)
			}
		})
	}
}

// CreateCertificate refuses a parent that names a key other than the signer's, by PublicKey or by
// RawSubjectPublicKeyInfo, and signs under a parent that names the signer's key or none.
func TestCreateCertificateChecksTheParentsKey(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if ca.cert.PublicKey != nil {
		t.Fatalf("crypto/x509 parsed the composite key as %T; this test expects it not to", ca.cert.PublicKey)
	}
	withKey := func(c *x509.Certificate, pub crypto.PublicKey, spki []byte) *x509.Certificate {
		d := *c
		d.PublicKey, d.RawSubjectPublicKeyInfo = pub, spki
		return &d
	}
	tests := []struct {
		name    string
		parent  *x509.Certificate
		wantErr error
	}{
		{"the signer's key as PublicKey", withKey(ca.cert, ca.key.PublicKey(), nil), nil},
		{"the signer's key as RawSubjectPublicKeyInfo", ca.cert, nil},
		{"the signer's key both ways", withKey(ca.cert, ca.key.PublicKey(), ca.cert.RawSubjectPublicKeyInfo), nil},
		{"no key (a template)", withKey(ca.cert, nil, nil), nil},
		{"another composite key as PublicKey", withKey(ca.cert, other.key.PublicKey(), nil), composite.ErrUnsupported},
		{"another composite key as PublicKey, the signer's as RawSubjectPublicKeyInfo",
			withKey(ca.cert, other.key.PublicKey(), ca.cert.RawSubjectPublicKeyInfo), composite.ErrUnsupported},
		{"a classical key as PublicKey", withKey(ca.cert, &ec.PublicKey, nil), composite.ErrUnsupported},
		{"another composite key as RawSubjectPublicKeyInfo", withKey(ca.cert, nil, other.cert.RawSubjectPublicKeyInfo),
			composite.ErrUnsupported},
		{"a RawSubjectPublicKeyInfo that does not parse", withKey(ca.cert, nil, []byte{1, 2, 3}),
			composite.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run("a parent with "+tt.name, func(t *testing.T) {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(6), NotBefore: time.Now(),
				NotAfter: time.Now().Add(time.Hour)}
			der, err := composite.CreateCertificate(rand.Reader, tmpl, tt.parent, &ec.PublicKey, ca.key)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				if err := composite.VerifyCertificateSignature(der, ca.key.PublicKey()); err != nil {
					t.Errorf("the certificate does not verify with the signer's key: %v", err)
				}
			}
		})
	}
}

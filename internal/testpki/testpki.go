package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"
)

// Key returns a new ECDSA P-256 key.
func Key(tb testing.TB) crypto.Signer {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Sign creates the certificate tmpl for pub, signed by key as parent, or self-signed when parent is nil, and
// returns it parsed. A template without a serial number gets a random positive one of 128 bits.
func Sign(tb testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	tb.Helper()
	if tmpl.SerialNumber == nil {
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			tb.Fatal(err)
		}
		tmpl.SerialNumber = serial.Add(serial, big.NewInt(1))
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// CRL returns the DER of a CRL of ca signed by key, numbered number, valid from this to next, revoking
// serials at this.
func CRL(tb testing.TB, ca *x509.Certificate, key crypto.Signer, number int64, this, next time.Time,
	serials ...*big.Int) []byte {
	tb.Helper()
	rl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: this, NextUpdate: next}
	for _, s := range serials {
		rl.RevokedCertificateEntries = append(rl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: this})
	}
	der, err := x509.CreateRevocationList(rand.Reader, rl, ca, key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// CertsPEM encodes certificates as one PEM document.
func CertsPEM(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// WorkloadTemplate is the leaf a CA should issue to the workload id at now: valid from a minute before now for
// an hour, the SPIFFE ID as its only SAN, digital signature, server and client authentication.
func WorkloadTemplate(tb testing.TB, id string, now time.Time) *x509.Certificate {
	tb.Helper()
	u, err := url.Parse(id)
	if err != nil {
		tb.Fatal(err)
	}
	return &x509.Certificate{NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
}

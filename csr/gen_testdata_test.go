package csr_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

var regenerate = flag.Bool("regenerate", false, "rewrite testdata/*.pem")

// TestRegenerateTestdata rewrites the CSR files in testdata when run with -regenerate; they are committed so
// the malformed inputs stay fixed.
func TestRegenerateTestdata(t *testing.T) {
	if !*regenerate {
		t.Skip("run with -regenerate to rewrite testdata")
	}
	write := func(name string, der []byte) {
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	u, _ := url.Parse("spiffe://cluster.local/ns/default/sa/sleep")
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, p224)
	if err != nil {
		t.Fatal(err)
	}
	write("p224.pem", der)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, p256)
	write("good-p256.pem", der)
	bad := append([]byte(nil), der...)
	bad[len(bad)-5] ^= 0x55
	write("bad-signature.pem", bad)
	write("truncated.pem", der[:len(der)/2])
}

package backends_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
)

func TestParsePEM(t *testing.T) {
	g, err := file.Generate(file.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bundle := bytes.Join([][]byte{[]byte("openssl text before\n"), g.CertPEM, g.KeyPEM, g.RootPEM}, nil)
	certs, err := backends.ParseCertificates(bundle)
	if err != nil || len(certs) != 2 || !certs[0].Equal(g.Intermediate) || !certs[1].Equal(g.Root) {
		t.Fatalf("ParseCertificates: %d certs, %v; want intermediate then root", len(certs), err)
	}
	for name, in := range map[string][]byte{
		"empty":         nil,
		"only a key":    g.KeyPEM,
		"a broken cert": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 1, 2, 3}}),
	} {
		if _, err := backends.ParseCertificates(in); err == nil {
			t.Errorf("ParseCertificates(%s) succeeded", name)
		}
	}
	params := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")
	key, err := backends.ParsePrivateKey(bytes.Join([][]byte{params, g.KeyPEM}, nil))
	if err != nil || !g.Intermediate.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
		t.Fatalf("ParsePrivateKey: %v", err)
	}
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})
	for name, in := range map[string][]byte{"empty": nil, "a certificate": g.CertPEM, "an encrypted key": encrypted} {
		if _, err := backends.ParsePrivateKey(in); err == nil {
			t.Errorf("ParsePrivateKey(%s) succeeded", name)
		}
	}
}

func FuzzParseCertificates(f *testing.F) {
	g, _ := file.Generate(file.GenerateOptions{})
	f.Add(append(append([]byte{}, g.CertPEM...), g.RootPEM...))
	f.Add(g.KeyPEM)
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := backends.ParseCertificates(b)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
		for _, c := range certs {
			if _, err := x509.ParseCertificate(c.Raw); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	g, _ := file.Generate(file.GenerateOptions{})
	f.Add(g.KeyPEM)
	f.Add(g.CertPEM)
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := backends.ParsePrivateKey(b); err == nil && k.Public() == nil {
			t.Fatal("a key without a public key")
		}
	})
}

package backends_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
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

// FuzzParseCertificates: whatever parses is exactly the CERTIFICATE blocks of the input, in order: writing
// them back to PEM and parsing again gives the same certificates, and a bundle made only of those blocks parses
// to the same list (so nothing was skipped that should not have been, nor invented).
func FuzzParseCertificates(f *testing.F) {
	g, _ := file.Generate(file.GenerateOptions{})
	f.Add(append(append([]byte{}, g.CertPEM...), g.RootPEM...))
	f.Add(g.KeyPEM)
	f.Add(append([]byte("text\n"), g.RootPEM...))
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := backends.ParseCertificates(b)
		var blocks [][]byte
		for rest := b; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			if block.Type == "CERTIFICATE" {
				blocks = append(blocks, block.Bytes)
			}
		}
		if err != nil {
			if len(blocks) > 0 && allParse(blocks) {
				t.Fatalf("refused a bundle whose %d CERTIFICATE blocks all parse: %v", len(blocks), err)
			}
			return
		}
		if len(certs) == 0 || len(certs) != len(blocks) {
			t.Fatalf("%d certificates from %d CERTIFICATE blocks", len(certs), len(blocks))
		}
		var again []byte
		for i, c := range certs {
			if !bytes.Equal(c.Raw, blocks[i]) {
				t.Fatalf("certificate %d is not the input's block %d", i, i)
			}
			again = append(again, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		round, err := backends.ParseCertificates(again)
		if err != nil || len(round) != len(certs) {
			t.Fatalf("round trip: %d certificates, %v; want %d", len(round), err, len(certs))
		}
		for i := range round {
			if !round[i].Equal(certs[i]) {
				t.Fatalf("round trip changed certificate %d", i)
			}
		}
	})
}

func allParse(blocks [][]byte) bool {
	for _, b := range blocks {
		if _, err := x509.ParseCertificate(b); err != nil {
			return false
		}
	}
	return true
}

// FuzzParsePrivateKey: a key that parses is usable: it signs, its own public key verifies the signature, and it
// survives a PKCS #8 round trip unchanged.
func FuzzParsePrivateKey(f *testing.F) {
	g, _ := file.Generate(file.GenerateOptions{})
	f.Add(g.KeyPEM)
	f.Add(g.CertPEM)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := backends.ParsePrivateKey(b)
		if err != nil {
			return
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatalf("a parsed %T does not marshal: %v", k, err)
		}
		back, err := backends.ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		if err != nil {
			t.Fatalf("PKCS #8 round trip: %v", err)
		}
		pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !pub.Equal(back.Public()) {
			t.Fatal("PKCS #8 round trip changed the key")
		}
		msg, opts := sha256.Sum256([]byte("meshca")), crypto.SignerOpts(crypto.SHA256)
		if _, ok := k.(ed25519.PrivateKey); ok {
			opts = crypto.Hash(0) // Ed25519 signs the message itself
		}
		sig, err := k.Sign(rand.Reader, msg[:], opts)
		if err != nil {
			t.Fatalf("a parsed %T cannot sign: %v", k, err)
		}
		if err := verify(k.Public(), msg[:], sig); err != nil {
			t.Fatalf("a parsed %T makes signatures its public key refuses: %v", k, err)
		}
	})
}

func verify(pub crypto.PublicKey, digest, sig []byte) error {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(p, crypto.SHA256, digest, sig)
	case ed25519.PublicKey:
		if !ed25519.Verify(p, digest, sig) {
			return errors.New("Ed25519 signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unexpected key type %T", pub)
}

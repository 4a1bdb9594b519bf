package composite_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"

	"github.com/meshca/meshca/csr/composite"
)

// vectorFile is the draft's src/testvectors.json (see testdata/README.md); encoding/json decodes the base64.
type vectorFile struct {
	M     []byte   `json:"m"`
	Ctx   []byte   `json:"ctx"`
	Tests []vector `json:"tests"`
}

type vector struct {
	TcID         string `json:"tcId"`
	PK           []byte `json:"pk"`
	X5C          []byte `json:"x5c"`
	SK           []byte `json:"sk"`
	SKPKCS8      []byte `json:"sk_pkcs8"`
	S            []byte `json:"s"`
	SWithContext []byte `json:"sWithContext"`
}

func loadVectors(tb testing.TB) *vectorFile {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "composite-sigs-testvectors.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(b, &f); err != nil {
		tb.Fatal(err)
	}
	return &f
}

// skipped lists the draft's algorithms this package does not implement, and why. The package doc carries the
// same table.
var skipped = map[string]string{
	"id-MLDSA44-RSA2048-PSS-SHA256":           "RSA component: meshca issues no RSA composites",
	"id-MLDSA44-RSA2048-PKCS15-SHA256":        "RSA component: meshca issues no RSA composites",
	"id-MLDSA65-RSA3072-PSS-SHA512":           "RSA component: meshca issues no RSA composites",
	"id-MLDSA65-RSA3072-PKCS15-SHA512":        "RSA component: meshca issues no RSA composites",
	"id-MLDSA65-RSA4096-PSS-SHA512":           "RSA component: meshca issues no RSA composites",
	"id-MLDSA65-RSA4096-PKCS15-SHA512":        "RSA component: meshca issues no RSA composites",
	"id-MLDSA87-RSA3072-PSS-SHA512":           "RSA component: meshca issues no RSA composites",
	"id-MLDSA87-RSA4096-PSS-SHA512":           "RSA component: meshca issues no RSA composites",
	"id-MLDSA44-Ed25519-SHA512":               "EdDSA component: meshca issues ECDSA composites only",
	"id-MLDSA65-Ed25519-SHA512":               "EdDSA component: meshca issues ECDSA composites only",
	"id-MLDSA87-Ed448-SHAKE256":               "Ed448 is not in Go's standard library",
	"id-MLDSA65-ECDSA-brainpoolP256r1-SHA512": "brainpool curves are not in Go's standard library",
	"id-MLDSA87-ECDSA-brainpoolP384r1-SHA512": "brainpool curves are not in Go's standard library",
}

// draftParams restates, independently of the package, the draft's Section 7 rows for the supported
// composites, so the cross-checks below do not reuse the code under test.
var draftParams = map[string]struct {
	label       string
	ph, ecHash  crypto.Hash
	curve       elliptic.Curve
	mldsaScheme sign.Scheme
}{
	"id-MLDSA44-ECDSA-P256-SHA256": {"COMPSIG-MLDSA44-ECDSA-P256-SHA256", crypto.SHA256, crypto.SHA256,
		elliptic.P256(), mldsa44.Scheme()},
	"id-MLDSA65-ECDSA-P256-SHA512": {"COMPSIG-MLDSA65-ECDSA-P256-SHA512", crypto.SHA512, crypto.SHA256,
		elliptic.P256(), mldsa65.Scheme()},
	"id-MLDSA65-ECDSA-P384-SHA512": {"COMPSIG-MLDSA65-ECDSA-P384-SHA512", crypto.SHA512, crypto.SHA384,
		elliptic.P384(), mldsa65.Scheme()},
	"id-MLDSA87-ECDSA-P384-SHA512": {"COMPSIG-MLDSA87-ECDSA-P384-SHA512", crypto.SHA512, crypto.SHA384,
		elliptic.P384(), mldsa87.Scheme()},
	"id-MLDSA87-ECDSA-P521-SHA512": {"COMPSIG-MLDSA87-ECDSA-P521-SHA512", crypto.SHA512, crypto.SHA512,
		elliptic.P521(), mldsa87.Scheme()},
}

// crossCheck verifies a composite signature without the package: M' is rebuilt from the draft's formula, the
// ML-DSA part is checked by circl's generic scheme with the label as context and the ECDSA part by
// crypto/ecdsa over the traditional hash of M'.
func crossCheck(t *testing.T, tcID string, pk, msg, ctx, sig []byte) {
	t.Helper()
	d, ok := draftParams[tcID]
	if !ok {
		t.Fatalf("no draft parameters for %s", tcID)
	}
	h := d.ph.New()
	h.Write(msg)
	mp := []byte("CompositeAlgorithmSignatures2025" + d.label)
	mp = append(append(append(mp, byte(len(ctx))), ctx...), h.Sum(nil)...)
	n, m := d.mldsaScheme.PublicKeySize(), d.mldsaScheme.SignatureSize()
	mpk, err := d.mldsaScheme.UnmarshalBinaryPublicKey(pk[:n])
	if err != nil {
		t.Fatal(err)
	}
	if !d.mldsaScheme.Verify(mpk, mp, sig[:m], &sign.SignatureOpts{Context: d.label}) {
		t.Errorf("%s: the ML-DSA component does not verify on M' with circl directly", tcID)
	}
	ec, err := ecdsa.ParseUncompressedPublicKey(d.curve, pk[n:])
	if err != nil {
		t.Fatal(err)
	}
	eh := d.ecHash.New()
	eh.Write(mp)
	if !ecdsa.VerifyASN1(ec, eh.Sum(nil), sig[m:]) {
		t.Errorf("%s: the ECDSA component does not verify on M' with crypto/ecdsa directly", tcID)
	}
}

// supportedKeys maps the tcIds of the supported algorithms to their public-key constructors.
func supportedKeys() map[string]func([]byte) (crypto.PublicKey, error) {
	m := map[string]func([]byte) (crypto.PublicKey, error){}
	for _, a := range composite.Algorithms() {
		m["id-"+a.String()] = func(b []byte) (crypto.PublicKey, error) { return composite.NewPublicKey(a, b) }
	}
	for _, p := range []composite.MLDSAParameters{composite.MLDSA44(), composite.MLDSA65(), composite.MLDSA87()} {
		m["id-"+p.String()] = func(b []byte) (crypto.PublicKey, error) { return composite.NewMLDSAPublicKey(p, b) }
	}
	return m
}

func verifyAny(pub crypto.PublicKey, msg, sig []byte, ctx []byte) error {
	opts := &composite.Options{Context: string(ctx)}
	switch k := pub.(type) {
	case *composite.PublicKey:
		return composite.Verify(k, msg, sig, opts)
	case *composite.MLDSAPublicKey:
		return composite.VerifyMLDSA(k, msg, sig, opts)
	}
	return fmt.Errorf("unexpected key type %T", pub)
}

func flipBit(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestVectorsCoverEveryAlgorithmOnce(t *testing.T) {
	f := loadVectors(t)
	keys := supportedKeys()
	var rows []string
	seen := map[string]bool{}
	for _, v := range f.Tests {
		if seen[v.TcID] {
			t.Errorf("%s appears twice", v.TcID)
		}
		seen[v.TcID] = true
		_, ok := keys[v.TcID]
		reason, skip := skipped[v.TcID]
		switch {
		case ok && skip, !ok && !skip:
			t.Errorf("%s must be either supported or skipped with a reason", v.TcID)
		case ok:
			if len(v.PK) == 0 || len(v.S) == 0 || len(v.X5C) == 0 {
				t.Errorf("%s is supported but its vector is incomplete in testdata", v.TcID)
			}
			rows = append(rows, fmt.Sprintf("%-42s supported", v.TcID))
		default:
			rows = append(rows, fmt.Sprintf("%-42s skipped: %s", v.TcID, reason))
		}
	}
	for id := range keys {
		if !seen[id] {
			t.Errorf("supported %s has no vector", id)
		}
	}
	sort.Strings(rows)
	t.Logf("draft test vectors:\n%s", strings.Join(rows, "\n"))
}

func TestVectors(t *testing.T) {
	f := loadVectors(t)
	keys := supportedKeys()
	for _, v := range f.Tests {
		newKey, ok := keys[v.TcID]
		if !ok {
			continue
		}
		t.Run(v.TcID, func(t *testing.T) {
			pub, err := newKey(v.PK)
			if err != nil {
				t.Fatalf("pk does not parse: %v", err)
			}
			_, isComposite := pub.(*composite.PublicKey)
			t.Run("s and sWithContext verify with pk under their contexts", func(t *testing.T) {
				if err := verifyAny(pub, f.M, v.S, nil); err != nil {
					t.Errorf("s: %v", err)
				}
				if err := verifyAny(pub, f.M, v.SWithContext, f.Ctx); err != nil {
					t.Errorf("sWithContext: %v", err)
				}
				if isComposite {
					crossCheck(t, v.TcID, v.PK, f.M, nil, v.S)
					crossCheck(t, v.TcID, v.PK, f.M, f.Ctx, v.SWithContext)
				}
			})
			t.Run("each signature fails under the other context", func(t *testing.T) {
				assertInvalid(t, verifyAny(pub, f.M, v.S, f.Ctx))
				assertInvalid(t, verifyAny(pub, f.M, v.SWithContext, nil))
			})
			t.Run("each signature fails after one flipped bit in the message", func(t *testing.T) {
				m := flipBit(f.M, len(f.M)/2)
				assertInvalid(t, verifyAny(pub, m, v.S, nil))
				assertInvalid(t, verifyAny(pub, m, v.SWithContext, f.Ctx))
			})
			t.Run("each signature fails after one flipped bit in the signature", func(t *testing.T) {
				for _, i := range flipPositions(pub, v.S) {
					assertInvalid(t, verifyAny(pub, f.M, flipBit(v.S, i), nil))
				}
				for _, i := range flipPositions(pub, v.SWithContext) {
					assertInvalid(t, verifyAny(pub, f.M, flipBit(v.SWithContext, i), f.Ctx))
				}
			})
			t.Run("x5c is self-signed by pk and certifies pk", func(t *testing.T) {
				checkX5C(t, pub, v.X5C)
			})
			t.Run("sk and sk_pkcs8 hold pk's private key and sign for it", func(t *testing.T) {
				checkPrivateKey(t, pub, v, f.M, f.Ctx)
			})
		})
	}
}

// flipPositions returns one byte in the ML-DSA part and, for a composite, one in the ECDSA part (the last
// byte of s, so the DER stays well-formed and the ECDSA check itself must fail).
func flipPositions(pub crypto.PublicKey, sig []byte) []int {
	if _, ok := pub.(*composite.PublicKey); ok {
		return []int{100, len(sig) - 1}
	}
	return []int{100, len(sig) / 2}
}

func assertInvalid(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, composite.ErrInvalidSignature) {
		t.Errorf("got %v, want ErrInvalidSignature", err)
	}
}

func checkX5C(t *testing.T, pub crypto.PublicKey, der []byte) {
	t.Helper()
	if err := composite.VerifyCertificateSignature(der, pub); err != nil {
		t.Fatalf("x5c self-signature: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("crypto/x509 does not parse x5c: %v", err)
	}
	certPub, err := composite.ParsePKIXPublicKey(cert.RawSubjectPublicKeyInfo)
	if err != nil {
		t.Fatalf("x5c key: %v", err)
	}
	if !certPub.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Error("x5c certifies another key than pk")
	}
	assertInvalid(t, composite.VerifyCertificateSignature(flipBit(der, len(der)-1), pub))
	serial := cert.SerialNumber.Bytes()
	i := bytes.Index(der, serial)
	if i < 0 || i > len(cert.RawTBSCertificate) {
		t.Fatal("serial number not found in tbsCertificate")
	}
	assertInvalid(t, composite.VerifyCertificateSignature(flipBit(der, i+len(serial)-1), pub))
}

func checkPrivateKey(t *testing.T, pub crypto.PublicKey, v vector, msg, ctx []byte) {
	t.Helper()
	key, err := composite.ParsePKCS8PrivateKey(v.SKPKCS8)
	if err != nil {
		t.Fatalf("sk_pkcs8: %v", err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Fatal("sk_pkcs8 is not pk's private key")
	}
	der, err := composite.MarshalPKCS8PrivateKey(key)
	if err != nil || !bytes.Equal(der, v.SKPKCS8) {
		t.Errorf("sk_pkcs8 does not re-encode to itself (err %v)", err)
	}
	var raw []byte
	switch k := key.(type) {
	case *composite.PrivateKey:
		raw = k.Bytes()
		fromSK, err := composite.NewPrivateKey(k.Algorithm(), v.SK)
		if err != nil || !fromSK.Equal(k) {
			t.Errorf("sk does not decode to the sk_pkcs8 key (err %v)", err)
		}
	case *composite.MLDSAPrivateKey:
		raw = k.Bytes()
	}
	if !bytes.Equal(raw, v.SK) {
		t.Error("the key's serialization is not sk")
	}
	sig, err := key.Sign(nil, msg, &composite.Options{Context: string(ctx)})
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyAny(pub, msg, sig, ctx); err != nil {
		t.Errorf("a new signature by sk does not verify with pk: %v", err)
	}
	if _, ok := key.(*composite.PrivateKey); ok {
		crossCheck(t, v.TcID, v.PK, msg, ctx, sig)
	}
}

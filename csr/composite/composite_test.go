package composite_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/meshca/meshca/csr/composite"
)

func newKey(tb testing.TB, alg composite.Algorithm) *composite.PrivateKey {
	tb.Helper()
	k, err := composite.GenerateKey(alg, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestSignVerifyRoundTrip(t *testing.T) {
	msg := []byte("tbsCertificate stand-in")
	for _, alg := range composite.Algorithms() {
		t.Run(alg.String(), func(t *testing.T) {
			key := newKey(t, alg)
			pub := key.PublicKey()
			mlen := mldsaSignatureSize(alg)
			for _, ctx := range []string{"", "meshca", strings.Repeat("c", 255)} {
				sig, err := key.Sign(nil, msg, &composite.Options{Context: ctx})
				if err != nil {
					t.Fatal(err)
				}
				opts := &composite.Options{Context: ctx}
				if err := composite.Verify(pub, msg, sig, opts); err != nil {
					t.Fatalf("a fresh signature with a %d-byte context does not verify: %v", len(ctx), err)
				}
				crossCheck(t, "id-"+alg.String(), pub.Bytes(), msg, []byte(ctx), sig)
				assertInvalid(t, composite.Verify(pub, msg, flipBit(sig, mlen/2), opts))     // ML-DSA part
				assertInvalid(t, composite.Verify(pub, msg, flipBit(sig, len(sig)-1), opts)) // ECDSA part
				assertInvalid(t, composite.Verify(pub, flipBit(msg, 0), sig, opts))          // message
				assertInvalid(t, composite.Verify(pub, msg, sig[:len(sig)-1], opts))         // truncated
				otherCtx := &composite.Options{Context: "x" + ctx[min(1, len(ctx)):]}
				assertInvalid(t, composite.Verify(pub, msg, sig, otherCtx))
			}
			other := newKey(t, alg)
			sig, err := key.Sign(nil, msg, nil)
			if err != nil {
				t.Fatal(err)
			}
			assertInvalid(t, composite.Verify(other.PublicKey(), msg, sig, nil))
		})
	}
}

func mldsaSignatureSize(alg composite.Algorithm) int {
	switch alg.MLDSAParameters().String() {
	case "ML-DSA-44":
		return 2420
	case "ML-DSA-65":
		return 3309
	}
	return 4627
}

// A component signature lifted out of a composite must not pass as a signature of the message on its own:
// the ML-DSA part signs M' under the label, not the message under the caller's context (draft Section 3.2).
func TestComponentsDoNotVerifyAlone(t *testing.T) {
	alg := composite.MLDSA65ECDSAP256SHA512()
	key := newKey(t, alg)
	msg := []byte("message")
	sig, err := key.Sign(nil, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	mpub, err := composite.NewMLDSAPublicKey(composite.MLDSA65(), key.PublicKey().Bytes()[:1952])
	if err != nil {
		t.Fatal(err)
	}
	assertInvalid(t, composite.VerifyMLDSA(mpub, msg, sig[:3309], nil))
	ec, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), key.PublicKey().Bytes()[1952:])
	if err != nil {
		t.Fatal(err)
	}
	digest := crypto.SHA256.New()
	digest.Write(msg)
	if ecdsa.VerifyASN1(ec, digest.Sum(nil), sig[3309:]) {
		t.Error("the ECDSA component verifies over the plain message")
	}
}

func TestSignRefusesBadOptions(t *testing.T) {
	key := newKey(t, composite.MLDSA65ECDSAP256SHA512())
	mkey, err := composite.GenerateMLDSAKey(composite.MLDSA65(), nil)
	if err != nil {
		t.Fatal(err)
	}
	long := &composite.Options{Context: strings.Repeat("c", 256)}
	tests := []struct {
		name    string
		signer  crypto.Signer
		opts    crypto.SignerOpts
		wantErr error
	}{
		{"a composite key refuses a pre-hashed message", key, crypto.SHA256, composite.ErrUnsupported},
		{"a composite key refuses a 256-byte context", key, long, composite.ErrContextTooLong},
		{"a composite key refuses options of another type", key, &rsa.PSSOptions{}, composite.ErrUnsupported},
		{"an ML-DSA key refuses a pre-hashed message", mkey, crypto.SHA512, composite.ErrUnsupported},
		{"an ML-DSA key refuses a 256-byte context", mkey, long, composite.ErrContextTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.signer.Sign(rand.Reader, []byte("m"), tt.opts); !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
	sig, _ := key.Sign(nil, []byte("m"), nil)
	if err := composite.Verify(key.PublicKey(), []byte("m"), sig, long); !errors.Is(err, composite.ErrContextTooLong) {
		t.Errorf("Verify with a 256-byte context: got %v", err)
	}
}

func TestKeyEncodingsRoundTrip(t *testing.T) {
	for _, alg := range composite.Algorithms() {
		t.Run(alg.String(), func(t *testing.T) {
			key := newKey(t, alg)
			fromRaw, err := composite.NewPrivateKey(alg, key.Bytes())
			if err != nil || !fromRaw.Equal(key) || !fromRaw.PublicKey().Equal(key.PublicKey()) {
				t.Fatalf("raw private key round trip: %v", err)
			}
			p8, err := composite.MarshalPKCS8PrivateKey(key)
			if err != nil {
				t.Fatal(err)
			}
			fromP8, err := composite.ParsePKCS8PrivateKey(p8)
			if err != nil || !key.Equal(fromP8) {
				t.Fatalf("PKCS #8 round trip: %v", err)
			}
			spki, err := composite.MarshalPKIXPublicKey(key.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			pub, err := composite.ParsePKIXPublicKey(spki)
			if err != nil || !key.PublicKey().Equal(pub) {
				t.Fatalf("SubjectPublicKeyInfo round trip: %v", err)
			}
			if newKey(t, alg).Equal(key) || newKey(t, alg).PublicKey().Equal(key.PublicKey()) {
				t.Error("two fresh keys compare equal")
			}
		})
	}
}

func TestGenerateKeyReadsTheSeedFromRand(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, composite.SeedSize)
	a, err := composite.GenerateKey(composite.MLDSA65ECDSAP256SHA512(), bytes.NewReader(append(seed, seed...)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes()[:composite.SeedSize], seed) {
		t.Error("the ML-DSA seed is not the reader's first 32 bytes")
	}
	if _, err := composite.GenerateKey(composite.MLDSA65ECDSAP256SHA512(), bytes.NewReader(seed[:5])); err == nil {
		t.Error("a short reader did not fail key generation")
	}
	if _, err := composite.GenerateKey(composite.Algorithm{}, nil); !errors.Is(err, composite.ErrUnsupported) {
		t.Errorf("the zero Algorithm: got %v", err)
	}
}

// ecPrivateKey encodes an RFC 5915 ECPrivateKey with the given version, scalar, curve and optional public key.
func ecPrivateKey(version int64, d []byte, curve []int, pub []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(version)
		b.AddASN1OctetString(d)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(curve)
		})
		if pub != nil {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1BitString(pub)
			})
		}
	})
	return b.BytesOrPanic()
}

func TestMalformedKeysAreRefused(t *testing.T) {
	alg := composite.MLDSA65ECDSAP256SHA512()
	key := newKey(t, alg)
	pub := key.PublicKey().Bytes()
	seed := key.Bytes()[:composite.SeedSize]
	d := bytes.Repeat([]byte{1}, 32)
	p256 := []int{1, 2, 840, 10045, 3, 1, 7}
	offCurve := bytes.Clone(pub)
	offCurve[len(offCurve)-1] ^= 1
	compressed := append(bytes.Clone(pub[:1952]), 0x02)
	compressed = append(compressed, pub[1953:1985]...)
	pubErr := func(b []byte) func() error {
		return func() error { _, err := composite.NewPublicKey(alg, b); return err }
	}
	privErr := func(ec []byte) func() error {
		return func() error { _, err := composite.NewPrivateKey(alg, append(bytes.Clone(seed), ec...)); return err }
	}
	p384 := []int{1, 3, 132, 0, 34}
	point := key.PublicKey().Bytes()[1952:]
	tests := []struct {
		name    string
		parse   func() error
		wantErr error
	}{
		{"a public key one byte short", pubErr(pub[:len(pub)-1]), composite.ErrMalformed},
		{"a public key whose point is off the curve", pubErr(offCurve), composite.ErrMalformed},
		{"a public key with a compressed point", pubErr(compressed), composite.ErrMalformed},
		{"a private key that is only a seed", privErr(nil), composite.ErrMalformed},
		{"a private key whose ECPrivateKey carries the public key", privErr(ecPrivateKey(1, d, p256, point)),
			composite.ErrMalformed},
		{
			"a private key on P-384 for a P-256 composite",
			privErr(ecPrivateKey(1, d, p384, nil)),
			composite.ErrMalformed,
		},
		{"a private key of version 0", privErr(ecPrivateKey(0, d, p256, nil)), composite.ErrMalformed},
		{"a private key with a zero scalar", privErr(ecPrivateKey(1, make([]byte, 32), p256, nil)),
			composite.ErrMalformed},
		{"a private key with a short scalar", privErr(ecPrivateKey(1, d[1:], p256, nil)), composite.ErrMalformed},
		{"an ML-DSA seed of 31 bytes", func() error {
			_, err := composite.NewMLDSAPrivateKey(composite.MLDSA65(), seed[1:])
			return err
		}, composite.ErrMalformed},
		{"an ML-DSA public key of the wrong parameter set", func() error {
			_, err := composite.NewMLDSAPublicKey(composite.MLDSA44(), pub[:1952])
			return err
		}, composite.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if err := tt.parse(); !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
	if err := privErr(ecPrivateKey(1, d, p256, nil))(); err != nil {
		t.Errorf("the well-formed control key is refused: %v", err)
	}
}

package composite_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/meshca/meshca/csr/composite"
)

// The message stands for a tbsCertificate; ECDSA signs its SHA-256, as ecdsa-with-SHA256 does.
var benchMsg = make([]byte, 1024)

func BenchmarkKeyGen(b *testing.B) {
	b.Run("composite MLDSA65-ECDSA-P256", func(b *testing.B) {
		for b.Loop() {
			if _, err := composite.GenerateKey(composite.MLDSA65ECDSAP256SHA512(), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ML-DSA-65 circl", func(b *testing.B) {
		for b.Loop() {
			if _, err := composite.GenerateMLDSAKey(composite.MLDSA65(), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ECDSA P-256", func(b *testing.B) {
		for b.Loop() {
			if _, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSign(b *testing.B) {
	ckey := newKey(b, composite.MLDSA65ECDSAP256SHA512())
	mkey, _ := composite.GenerateMLDSAKey(composite.MLDSA65(), nil)
	ekey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b.Run("composite MLDSA65-ECDSA-P256", func(b *testing.B) {
		for b.Loop() {
			if _, err := ckey.Sign(nil, benchMsg, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ML-DSA-65 circl", func(b *testing.B) {
		for b.Loop() {
			if _, err := mkey.Sign(nil, benchMsg, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ECDSA P-256", func(b *testing.B) {
		for b.Loop() {
			h := sha256.Sum256(benchMsg)
			if _, err := ecdsa.SignASN1(rand.Reader, ekey, h[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	ckey := newKey(b, composite.MLDSA65ECDSAP256SHA512())
	csig, _ := ckey.Sign(nil, benchMsg, nil)
	mkey, _ := composite.GenerateMLDSAKey(composite.MLDSA65(), nil)
	msig, _ := mkey.Sign(nil, benchMsg, nil)
	ekey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h := sha256.Sum256(benchMsg)
	esig, _ := ecdsa.SignASN1(rand.Reader, ekey, h[:])
	b.Run("composite MLDSA65-ECDSA-P256", func(b *testing.B) {
		for b.Loop() {
			if err := composite.Verify(ckey.PublicKey(), benchMsg, csig, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ML-DSA-65 circl", func(b *testing.B) {
		for b.Loop() {
			if err := composite.VerifyMLDSA(mkey.PublicKey(), benchMsg, msig, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ECDSA P-256", func(b *testing.B) {
		for b.Loop() {
			h := sha256.Sum256(benchMsg)
			if !ecdsa.VerifyASN1(&ekey.PublicKey, h[:], esig) {
				b.Fatal("ECDSA signature does not verify")
			}
		}
	})
}

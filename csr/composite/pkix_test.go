package composite_test

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/meshca/meshca/csr/composite"
)

// spki encodes a SubjectPublicKeyInfo; params, if not nil, is appended inside the AlgorithmIdentifier.
func spki(oid []int, params, key []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddBytes(params)
		})
		b.AddASN1BitString(key)
	})
	return b.BytesOrPanic()
}

// oneAsymmetricKey encodes a PKCS #8 / RFC 5958 key; pub, if not nil, is the [1] publicKey.
func oneAsymmetricKey(version int64, oid []int, priv, pub []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(version)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oid) })
		b.AddASN1OctetString(priv)
		if pub != nil {
			b.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddUint8(0)
				b.AddBytes(pub)
			})
		}
	})
	return b.BytesOrPanic()
}

func TestPKIXEncodingsRefusals(t *testing.T) {
	alg := composite.MLDSA65ECDSAP256SHA512()
	oid := []int(alg.OID())
	key := newKey(t, alg)
	other := newKey(t, alg)
	pub := key.PublicKey().Bytes()
	null := []byte{5, 0}
	mldsa65 := []int(composite.MLDSA65().OID())
	seed := bytes.Repeat([]byte{9}, 32)
	tagged := func(tag byte, b []byte) []byte { return append([]byte{tag, byte(len(b))}, b...) }
	tests := []struct {
		name    string
		parse   func() error
		wantErr error
	}{
		{"a composite key with NULL parameters", pkixErr(spki(oid, null, pub)), composite.ErrMalformed},
		{"an ML-DSA key with NULL parameters", pkixErr(spki(mldsa65, null, pub[:1952])), composite.ErrMalformed},
		{"an RSA key", pkixErr(spki([]int{1, 2, 840, 113549, 1, 1, 1}, null, []byte{0})), composite.ErrUnsupported},
		{"a composite RSA key", pkixErr(spki([]int{1, 3, 6, 1, 5, 5, 7, 6, 41}, nil, pub)), composite.ErrUnsupported},
		{"a composite key of the wrong length", pkixErr(spki(oid, nil, pub[1:])), composite.ErrMalformed},
		{"trailing data after the key", pkixErr(append(spki(oid, nil, pub), 0)), composite.ErrMalformed},
		{"a PKCS #8 key whose publicKey is another key's",
			p8Err(oneAsymmetricKey(1, oid, key.Bytes(), other.PublicKey().Bytes())), composite.ErrMalformed},
		{"a version 0 PKCS #8 key with a publicKey", p8Err(oneAsymmetricKey(0, oid, key.Bytes(), pub)),
			composite.ErrMalformed},
		{"a PKCS #8 key of version 2", p8Err(oneAsymmetricKey(2, oid, key.Bytes(), nil)), composite.ErrMalformed},
		{"an ML-DSA key in expandedKey form", p8Err(oneAsymmetricKey(0, mldsa65, tagged(0x04, seed), nil)),
			composite.ErrUnsupported},
		{"an ML-DSA seed of 31 bytes", p8Err(oneAsymmetricKey(0, mldsa65, tagged(0x80, seed[1:]), nil)),
			composite.ErrMalformed},
		{"an ML-DSA seed followed by junk", p8Err(oneAsymmetricKey(0, mldsa65, append(tagged(0x80, seed), 0), nil)),
			composite.ErrMalformed},
		{"a PKCS #8 RSA key", p8Err(oneAsymmetricKey(0, []int{1, 2, 840, 113549, 1, 1, 1}, []byte{0}, nil)),
			composite.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if err := tt.parse(); !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
	if err := p8Err(oneAsymmetricKey(1, oid, key.Bytes(), pub))(); err != nil {
		t.Errorf("a version 1 PKCS #8 key with its own publicKey is refused: %v", err)
	}
	if err := p8Err(oneAsymmetricKey(0, mldsa65, tagged(0x80, seed), nil))(); err != nil {
		t.Errorf("an ML-DSA seed is refused: %v", err)
	}
}

func pkixErr(der []byte) func() error {
	return func() error { _, err := composite.ParsePKIXPublicKey(der); return err }
}

func p8Err(der []byte) func() error {
	return func() error { _, err := composite.ParsePKCS8PrivateKey(der); return err }
}

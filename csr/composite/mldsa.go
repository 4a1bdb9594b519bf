package composite

import (
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"encoding/asn1"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// This file is the only one that imports circl. Its shape follows Go 1.27's crypto/mldsa (a parameter set,
// NewPrivateKey from a 32-byte seed, NewPublicKey from bytes, Sign with a context in Options, Verify), so the
// move to the standard library replaces the three mldsaParams constructors below and nothing else.

// SeedSize is the length of an ML-DSA private key seed (FIPS 204 ξ), the only private key form this package
// reads and writes, in composites and alone.
const SeedSize = 32

// maxContextSize is the longest context FIPS 204 and the draft accept.
const maxContextSize = 255

// mldsaParams is one ML-DSA parameter set (FIPS 204, Table 1) bound to its implementation.
type mldsaParams struct {
	name          string
	oid           asn1.ObjectIdentifier // RFC 9881
	publicKeySize int
	signatureSize int
	// newKey derives a key pair from a seed (ML-DSA.KeyGen_internal): the encoded public key, a function that
	// signs (hedged, FIPS 204 Algorithm 2) a message under a context, and the public key's verifier.
	newKey func(seed *[SeedSize]byte) (pub []byte, sign signFunc, verify verifyFunc)
	// newPublic decodes a public key of exactly publicKeySize bytes into a verifier (FIPS 204 Algorithm 3).
	newPublic func(pub []byte) (verifyFunc, error)
}

type (
	signFunc   func(msg, ctx []byte) ([]byte, error)
	verifyFunc func(msg, ctx, sig []byte) bool
)

var (
	params44 = &mldsaParams{"ML-DSA-44", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 17},
		mldsa44.PublicKeySize, mldsa44.SignatureSize, newKey44, newPublic44}
	params65 = &mldsaParams{"ML-DSA-65", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18},
		mldsa65.PublicKeySize, mldsa65.SignatureSize, newKey65, newPublic65}
	params87 = &mldsaParams{"ML-DSA-87", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 19},
		mldsa87.PublicKeySize, mldsa87.SignatureSize, newKey87, newPublic87}
)

func newKey44(seed *[SeedSize]byte) ([]byte, signFunc, verifyFunc) {
	pk, sk := mldsa44.NewKeyFromSeed(seed)
	sign := func(msg, ctx []byte) ([]byte, error) {
		sig := make([]byte, mldsa44.SignatureSize)
		return sig, mldsa44.SignTo(sk, msg, ctx, true, sig)
	}
	verify := func(msg, ctx, sig []byte) bool { return mldsa44.Verify(pk, msg, ctx, sig) }
	return pk.Bytes(), sign, verify
}

func newPublic44(b []byte) (verifyFunc, error) {
	var pk mldsa44.PublicKey
	if err := pk.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return func(msg, ctx, sig []byte) bool { return mldsa44.Verify(&pk, msg, ctx, sig) }, nil
}

func newKey65(seed *[SeedSize]byte) ([]byte, signFunc, verifyFunc) {
	pk, sk := mldsa65.NewKeyFromSeed(seed)
	sign := func(msg, ctx []byte) ([]byte, error) {
		sig := make([]byte, mldsa65.SignatureSize)
		return sig, mldsa65.SignTo(sk, msg, ctx, true, sig)
	}
	verify := func(msg, ctx, sig []byte) bool { return mldsa65.Verify(pk, msg, ctx, sig) }
	return pk.Bytes(), sign, verify
}

func newPublic65(b []byte) (verifyFunc, error) {
	var pk mldsa65.PublicKey
	if err := pk.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return func(msg, ctx, sig []byte) bool { return mldsa65.Verify(&pk, msg, ctx, sig) }, nil
}

func newKey87(seed *[SeedSize]byte) ([]byte, signFunc, verifyFunc) {
	pk, sk := mldsa87.NewKeyFromSeed(seed)
	sign := func(msg, ctx []byte) ([]byte, error) {
		sig := make([]byte, mldsa87.SignatureSize)
		return sig, mldsa87.SignTo(sk, msg, ctx, true, sig)
	}
	verify := func(msg, ctx, sig []byte) bool { return mldsa87.Verify(pk, msg, ctx, sig) }
	return pk.Bytes(), sign, verify
}

func newPublic87(b []byte) (verifyFunc, error) {
	var pk mldsa87.PublicKey
	if err := pk.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return func(msg, ctx, sig []byte) bool { return mldsa87.Verify(&pk, msg, ctx, sig) }, nil
}

// MLDSAParameters is an ML-DSA parameter set, like crypto/mldsa.Parameters in Go 1.27. The zero value is
// invalid.
type MLDSAParameters struct{ p *mldsaParams }

// MLDSA44 returns ML-DSA-44 (id-ML-DSA-44, 2.16.840.1.101.3.4.3.17).
func MLDSA44() MLDSAParameters { return MLDSAParameters{params44} }

// MLDSA65 returns ML-DSA-65 (id-ML-DSA-65, 2.16.840.1.101.3.4.3.18).
func MLDSA65() MLDSAParameters { return MLDSAParameters{params65} }

// MLDSA87 returns ML-DSA-87 (id-ML-DSA-87, 2.16.840.1.101.3.4.3.19).
func MLDSA87() MLDSAParameters { return MLDSAParameters{params87} }

// String returns the parameter set's name, e.g. "ML-DSA-65".
func (p MLDSAParameters) String() string {
	if p.p == nil {
		return "invalid"
	}
	return p.p.name
}

// OID returns the RFC 9881 object identifier of the parameter set.
func (p MLDSAParameters) OID() asn1.ObjectIdentifier {
	if p.p == nil {
		return nil
	}
	return append(asn1.ObjectIdentifier(nil), p.p.oid...)
}

func mldsaByOID(oid asn1.ObjectIdentifier) (MLDSAParameters, bool) {
	for _, p := range []*mldsaParams{params44, params65, params87} {
		if p.oid.Equal(oid) {
			return MLDSAParameters{p}, true
		}
	}
	return MLDSAParameters{}, false
}

// MLDSAPublicKey is a pure ML-DSA public key (FIPS 204, RFC 9881). With Go 1.27 it gives way to
// *crypto/mldsa.PublicKey.
type MLDSAPublicKey struct {
	params *mldsaParams
	raw    []byte
	verify verifyFunc
}

// NewMLDSAPublicKey decodes an ML-DSA public key (FIPS 204 pkEncode) of the given parameter set.
func NewMLDSAPublicKey(p MLDSAParameters, b []byte) (*MLDSAPublicKey, error) {
	if p.p == nil {
		return nil, fmt.Errorf("%w: invalid ML-DSA parameter set", ErrUnsupported)
	}
	if len(b) != p.p.publicKeySize {
		return nil, fmt.Errorf("%w: %s public key is %d bytes, want %d", ErrMalformed, p.p.name, len(b),
			p.p.publicKeySize)
	}
	verify, err := p.p.newPublic(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s public key: %v", ErrMalformed, p.p.name, err)
	}
	return &MLDSAPublicKey{params: p.p, raw: append([]byte(nil), b...), verify: verify}, nil
}

// Parameters returns the key's parameter set.
func (k *MLDSAPublicKey) Parameters() MLDSAParameters { return MLDSAParameters{k.params} }

// Bytes returns the FIPS 204 encoding of the key.
func (k *MLDSAPublicKey) Bytes() []byte { return append([]byte(nil), k.raw...) }

// Equal reports whether x is an *MLDSAPublicKey of the same parameter set and value.
func (k *MLDSAPublicKey) Equal(x crypto.PublicKey) bool {
	o, ok := x.(*MLDSAPublicKey)
	return ok && o.params == k.params && subtle.ConstantTimeCompare(o.raw, k.raw) == 1
}

// VerifyMLDSA checks a pure ML-DSA signature (FIPS 204 ML-DSA.Verify) of msg under the context in opts (empty
// if opts is nil). It returns nil or an error wrapping ErrInvalidSignature or ErrContextTooLong.
func VerifyMLDSA(pub *MLDSAPublicKey, msg, sig []byte, opts *Options) error {
	ctx := opts.context()
	if len(ctx) > maxContextSize {
		return fmt.Errorf("%w: %d bytes", ErrContextTooLong, len(ctx))
	}
	if len(sig) != pub.params.signatureSize || !pub.verify(msg, []byte(ctx), sig) {
		return fmt.Errorf("%w: %s signature does not verify", ErrInvalidSignature, pub.params.name)
	}
	return nil
}

// MLDSAPrivateKey is a pure ML-DSA private key held as its seed. It implements crypto.Signer; with Go 1.27 it
// gives way to *crypto/mldsa.PrivateKey.
type MLDSAPrivateKey struct {
	seed [SeedSize]byte
	pub  *MLDSAPublicKey
	sign signFunc
}

// GenerateMLDSAKey generates a key pair, reading its 32-byte seed from rand (crypto/rand.Reader if nil).
func GenerateMLDSAKey(p MLDSAParameters, rand io.Reader) (*MLDSAPrivateKey, error) {
	var seed [SeedSize]byte
	if err := readSeed(rand, &seed); err != nil {
		return nil, err
	}
	return NewMLDSAPrivateKey(p, seed[:])
}

func readSeed(r io.Reader, seed *[SeedSize]byte) error {
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return fmt.Errorf("composite: reading the ML-DSA seed: %w", err)
	}
	return nil
}

// NewMLDSAPrivateKey derives the key pair of a 32-byte seed (FIPS 204 ML-DSA.KeyGen_internal).
func NewMLDSAPrivateKey(p MLDSAParameters, seed []byte) (*MLDSAPrivateKey, error) {
	if p.p == nil {
		return nil, fmt.Errorf("%w: invalid ML-DSA parameter set", ErrUnsupported)
	}
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("%w: ML-DSA seed is %d bytes, want %d", ErrMalformed, len(seed), SeedSize)
	}
	k := &MLDSAPrivateKey{}
	copy(k.seed[:], seed)
	pub, sign, verify := p.p.newKey(&k.seed)
	k.pub = &MLDSAPublicKey{params: p.p, raw: pub, verify: verify}
	k.sign = sign
	return k, nil
}

// Bytes returns the key's seed, its interoperable form (RFC 9881, the draft's Section 5).
func (k *MLDSAPrivateKey) Bytes() []byte { return append([]byte(nil), k.seed[:]...) }

// Public returns the *MLDSAPublicKey of the key.
func (k *MLDSAPrivateKey) Public() crypto.PublicKey { return k.pub }

// PublicKey returns the public half of the key.
func (k *MLDSAPrivateKey) PublicKey() *MLDSAPublicKey { return k.pub }

// Equal reports whether x is an *MLDSAPrivateKey with the same parameter set and seed.
func (k *MLDSAPrivateKey) Equal(x crypto.PrivateKey) bool {
	o, ok := x.(*MLDSAPrivateKey)
	return ok && o.pub.params == k.pub.params && subtle.ConstantTimeCompare(o.seed[:], k.seed[:]) == 1
}

// Sign signs msg itself, not a digest (FIPS 204 ML-DSA.Sign, hedged with fresh randomness from crypto/rand;
// rand is ignored). opts must be nil, crypto.Hash(0) or an *Options carrying the context.
func (k *MLDSAPrivateKey) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, err := signerContext(opts)
	if err != nil {
		return nil, err
	}
	sig, err := k.sign(msg, []byte(ctx))
	if err != nil {
		return nil, fmt.Errorf("composite: %s signing: %w", k.pub.params.name, err)
	}
	return sig, nil
}

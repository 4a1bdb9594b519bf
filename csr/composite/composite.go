package composite

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
)

// prefix is the draft's Prefix (Section 3.2): the ASCII bytes of "CompositeAlgorithmSignatures2025".
const prefix = "CompositeAlgorithmSignatures2025"

// Options carries the application context of a signature, as crypto/mldsa.Options does in Go 1.27. Pass it as
// the crypto.SignerOpts of Sign and to Verify; a nil *Options means the empty context, which X.509 uses.
type Options struct {
	// Context binds the signature to an application context; at most 255 bytes, empty by default. The same
	// context must be given to Verify.
	Context string
}

// HashFunc returns zero: composite and ML-DSA keys sign the message itself, never a caller's digest.
func (*Options) HashFunc() crypto.Hash { return 0 }

func (o *Options) context() string {
	if o == nil {
		return ""
	}
	return o.Context
}

// signerContext extracts the context from a crypto.SignerOpts and refuses a pre-hashed message.
func signerContext(opts crypto.SignerOpts) (string, error) {
	if opts == nil {
		return "", nil
	}
	if opts.HashFunc() != 0 {
		return "", fmt.Errorf("%w: the message must not be pre-hashed (got %v); pass the message itself",
			ErrUnsupported, opts.HashFunc())
	}
	var ctx string
	switch o := opts.(type) {
	case *Options:
		ctx = o.context()
	case crypto.Hash:
	default:
		return "", fmt.Errorf("%w: signer options of type %T; pass nil or an *Options", ErrUnsupported, opts)
	}
	if len(ctx) > maxContextSize {
		return "", fmt.Errorf("%w: %d bytes", ErrContextTooLong, len(ctx))
	}
	return ctx, nil
}

// messageRepresentative computes M' = Prefix || Label || len(ctx) || ctx || PH(M) (draft Section 3.2).
func (p *algParams) messageRepresentative(msg []byte, ctx string) []byte {
	h := p.ph.New()
	h.Write(msg)
	m := make([]byte, 0, len(prefix)+len(p.label)+1+len(ctx)+p.ph.Size())
	m = append(m, prefix...)
	m = append(m, p.label...)
	m = append(m, byte(len(ctx)))
	m = append(m, ctx...)
	return h.Sum(m)
}

// ecdsaDigest hashes M' with the hash of the traditional algorithm (e.g. SHA-256 for ecdsa-with-SHA256).
func (p *algParams) ecdsaDigest(mp []byte) []byte {
	h := p.ecHash.New()
	h.Write(mp)
	return h.Sum(nil)
}

// PublicKey is a composite ML-DSA + ECDSA public key.
type PublicKey struct {
	alg    *algParams
	raw    []byte // SerializePublicKey: ML-DSA public key || uncompressed ECDSA point
	verify verifyFunc
	ec     *ecdsa.PublicKey
}

// NewPublicKey decodes a composite public key in the draft's serialization (Section 5.1): the ML-DSA public
// key followed by the uncompressed X9.62 point of the ECDSA key, without ASN.1 wrapping.
func NewPublicKey(alg Algorithm, b []byte) (*PublicKey, error) {
	p := alg.p
	if p == nil {
		return nil, fmt.Errorf("%w: invalid composite algorithm", ErrUnsupported)
	}
	if len(b) != p.publicKeySize() {
		return nil, fmt.Errorf("%w: %s public key is %d bytes, want %d", ErrMalformed, p.name, len(b),
			p.publicKeySize())
	}
	n := p.mldsa.publicKeySize
	verify, err := p.mldsa.newPublic(b[:n])
	if err != nil {
		return nil, fmt.Errorf("%w: %s public key, ML-DSA part: %v", ErrMalformed, p.name, err)
	}
	ec, err := ecdsa.ParseUncompressedPublicKey(p.curve, b[n:])
	if err != nil {
		return nil, fmt.Errorf("%w: %s public key, ECDSA part: %v", ErrMalformed, p.name, err)
	}
	return &PublicKey{alg: p, raw: append([]byte(nil), b...), verify: verify, ec: ec}, nil
}

// Algorithm returns the key's composite algorithm.
func (k *PublicKey) Algorithm() Algorithm { return Algorithm{k.alg} }

// Bytes returns the draft's serialization of the key, the content of a SubjectPublicKeyInfo's BIT STRING.
func (k *PublicKey) Bytes() []byte { return append([]byte(nil), k.raw...) }

// Equal reports whether x is a *PublicKey of the same algorithm and value.
func (k *PublicKey) Equal(x crypto.PublicKey) bool {
	o, ok := x.(*PublicKey)
	return ok && o.alg == k.alg && subtle.ConstantTimeCompare(o.raw, k.raw) == 1
}

// Verify checks a composite signature of msg (draft Section 4.3) under the context in opts (empty if opts is
// nil). Both the ML-DSA and the ECDSA component must verify over M'. It returns nil or an error wrapping
// ErrInvalidSignature or ErrContextTooLong.
func Verify(pub *PublicKey, msg, sig []byte, opts *Options) error {
	ctx := opts.context()
	if len(ctx) > maxContextSize {
		return fmt.Errorf("%w: %d bytes", ErrContextTooLong, len(ctx))
	}
	p := pub.alg
	n := p.mldsa.signatureSize
	if len(sig) <= n || len(sig)-n > p.maxECDSASignatureSize() {
		return fmt.Errorf("%w: %s signature of %d bytes has the wrong length", ErrInvalidSignature, p.name,
			len(sig))
	}
	mp := p.messageRepresentative(msg, ctx)
	if !pub.verify(mp, []byte(p.label), sig[:n]) || !ecdsa.VerifyASN1(pub.ec, p.ecdsaDigest(mp), sig[n:]) {
		return fmt.Errorf("%w: %s signature does not verify", ErrInvalidSignature, p.name)
	}
	return nil
}

// PrivateKey is a composite ML-DSA + ECDSA private key. It implements crypto.Signer: Sign takes the message
// itself (the composite pre-hashes it) and an optional *Options with the context. It is safe for concurrent
// use.
type PrivateKey struct {
	pub   *PublicKey
	seed  [SeedSize]byte
	sign  signFunc
	ec    *ecdsa.PrivateKey
	ecDER []byte // ECPrivateKey without publicKey, as the draft's Section 5 serializes it
}

// GenerateKey generates a fresh composite key pair (draft Section 4.1): an ML-DSA seed read from rand
// (crypto/rand.Reader if nil) and a new ECDSA key. The ECDSA key is drawn by crypto/ecdsa.GenerateKey, which
// since Go 1.26 ignores rand and uses the system generator unless GODEBUG=cryptocustomrand=1.
func GenerateKey(alg Algorithm, rand io.Reader) (*PrivateKey, error) {
	if alg.p == nil {
		return nil, fmt.Errorf("%w: invalid composite algorithm", ErrUnsupported)
	}
	var seed [SeedSize]byte
	if err := readSeed(rand, &seed); err != nil {
		return nil, err
	}
	ec, err := ecdsa.GenerateKey(alg.p.curve, rand)
	if err != nil {
		return nil, fmt.Errorf("composite: generating the ECDSA key: %w", err)
	}
	return newPrivateKey(alg.p, &seed, ec)
}

func newPrivateKey(p *algParams, seed *[SeedSize]byte, ec *ecdsa.PrivateKey) (*PrivateKey, error) {
	mpub, sign, verify := p.mldsa.newKey(seed)
	point, err := ec.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: ECDSA public key: %v", ErrMalformed, err)
	}
	pub := &PublicKey{alg: p, raw: append(mpub, point...), verify: verify, ec: &ec.PublicKey}
	ecDER, err := marshalECPrivateKey(p, ec)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{pub: pub, seed: *seed, sign: sign, ec: ec, ecDER: ecDER}, nil
}

// NewPrivateKey decodes a composite private key in the draft's serialization (Section 5.2): the 32-byte
// ML-DSA seed followed by the DER ECPrivateKey (RFC 5915) with the named curve and without the public key.
func NewPrivateKey(alg Algorithm, b []byte) (*PrivateKey, error) {
	p := alg.p
	if p == nil {
		return nil, fmt.Errorf("%w: invalid composite algorithm", ErrUnsupported)
	}
	if len(b) <= SeedSize {
		return nil, fmt.Errorf("%w: %s private key of %d bytes is too short", ErrMalformed, p.name, len(b))
	}
	ec, err := parseECPrivateKey(p, b[SeedSize:])
	if err != nil {
		return nil, err
	}
	var seed [SeedSize]byte
	copy(seed[:], b)
	return newPrivateKey(p, &seed, ec)
}

// Algorithm returns the key's composite algorithm.
func (k *PrivateKey) Algorithm() Algorithm { return Algorithm{k.pub.alg} }

// Bytes returns the draft's serialization of the key, the content of a PKCS #8 privateKey OCTET STRING.
func (k *PrivateKey) Bytes() []byte {
	return append(append(make([]byte, 0, SeedSize+len(k.ecDER)), k.seed[:]...), k.ecDER...)
}

// Public returns the *PublicKey of the key.
func (k *PrivateKey) Public() crypto.PublicKey { return k.pub }

// PublicKey returns the public half of the key.
func (k *PrivateKey) PublicKey() *PublicKey { return k.pub }

// Equal reports whether x is a *PrivateKey with the same algorithm and components.
func (k *PrivateKey) Equal(x crypto.PrivateKey) bool {
	o, ok := x.(*PrivateKey)
	return ok && o.pub.alg == k.pub.alg && subtle.ConstantTimeCompare(o.seed[:], k.seed[:]) == 1 &&
		o.ec.Equal(k.ec)
}

// Sign makes a composite signature of msg (draft Section 4.2): both components sign
// M' = Prefix || Label || len(ctx) || ctx || PH(msg), ML-DSA (hedged) with the Label as its context and ECDSA
// over the digest of M'. msg is the message itself; opts must be nil, crypto.Hash(0) or an *Options. rand
// feeds the ECDSA signature (crypto/rand.Reader if nil; Go 1.26 uses the system generator regardless).
func (k *PrivateKey) Sign(rand io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, err := signerContext(opts)
	if err != nil {
		return nil, err
	}
	p := k.pub.alg
	mp := p.messageRepresentative(msg, ctx)
	mldsaSig, mErr := k.sign(mp, []byte(p.label))
	ecSig, eErr := ecdsa.SignASN1(randOrDefault(rand), k.ec, p.ecdsaDigest(mp))
	if mErr != nil || eErr != nil {
		// The draft (Section 4.2) asks not to reveal which component failed.
		return nil, fmt.Errorf("composite: %s signature generation failed", p.name)
	}
	return append(mldsaSig, ecSig...), nil
}

func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

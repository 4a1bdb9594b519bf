package csr_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"testing"
)

// This file builds CSRs field by field, so that tests can send what x509.CreateCertificateRequest refuses to
// write: any version, attribute, GeneralName or signature algorithm.

var (
	oidExtensionRequest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}
	oidSAN              = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidSKI              = asn1.ObjectIdentifier{2, 5, 29, 14}
)

// sigAlg is a CSR signature algorithm: its identifier and how to sign with it.
type sigAlg struct {
	id   pkix.AlgorithmIdentifier
	hash crypto.Hash // 0 signs the message itself (Ed25519) or, with garbage set, nothing at all
	pss  bool
	// garbage, when set, makes the signature random bytes: for algorithms Go cannot sign with.
	garbage bool
}

var asn1Null = asn1.RawValue{FullBytes: []byte{5, 0}}

func algo(hash crypto.Hash, arcs ...int) sigAlg {
	return sigAlg{id: pkix.AlgorithmIdentifier{Algorithm: arcs}, hash: hash}
}

// pkcs1 is an RSA PKCS #1 v1.5 algorithm, 1.2.840.113549.1.1.<arc> with NULL parameters.
func pkcs1(hash crypto.Hash, arc int) sigAlg {
	a := algo(hash, 1, 2, 840, 113549, 1, 1, arc)
	a.id.Parameters = asn1Null
	return a
}

var (
	algSHA256WithRSA   = pkcs1(crypto.SHA256, 11)
	algSHA1WithRSA     = pkcs1(crypto.SHA1, 5)
	algMD5WithRSA      = pkcs1(crypto.MD5, 4)
	algMD2WithRSA      = sigAlg{id: pkcs1(0, 2).id, garbage: true}
	algECDSAWithSHA1   = algo(crypto.SHA1, 1, 2, 840, 10045, 4, 1)
	algECDSAWithSHA256 = algo(crypto.SHA256, 1, 2, 840, 10045, 4, 3, 2)
	algDSAWithSHA256   = sigAlg{id: algo(0, 2, 16, 840, 1, 101, 3, 4, 3, 2).id, garbage: true}
	algEd25519         = algo(0, 1, 3, 101, 112)
	// algPSSWithSHA1 is RSASSA-PSS with empty parameters, whose defaults are SHA-1 (RFC 4055 §3.1).
	algPSSWithSHA1 = sigAlg{id: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10},
		Parameters: asn1.RawValue{FullBytes: []byte{0x30, 0}}}, garbage: true}
)

// rawCSR describes a CSR to build by hand. Zero fields take the shape of a ztunnel CSR: version 0, an empty
// subject, the key's SubjectPublicKeyInfo and one extensionRequest attribute holding exts.
type rawCSR struct {
	key     crypto.Signer // default a new P-256 key
	version int
	subject []byte           // DER Name; default empty
	spki    []byte           // default the key's
	exts    []pkix.Extension // put in one extensionRequest attribute
	// attrs, when set, replaces the attribute set built from exts.
	attrs []asn1.RawValue
	alg   *sigAlg // default the key's usual algorithm
}

type tbsRequest struct {
	Version    int
	Subject    asn1.RawValue
	PublicKey  asn1.RawValue
	Attributes []asn1.RawValue `asn1:"tag:0,set"`
}

type signedRequest struct {
	TBS       asn1.RawValue
	Algorithm pkix.AlgorithmIdentifier
	Signature asn1.BitString
}

// build returns the CSR r describes, in PEM.
func (r rawCSR) build(tb testing.TB) []byte {
	tb.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: r.der(tb)})
}

func (r rawCSR) der(tb testing.TB) []byte {
	tb.Helper()
	if r.key == nil {
		r.key = ecKey(tb)
	}
	if r.subject == nil {
		r.subject = []byte{0x30, 0}
	}
	if r.spki == nil {
		r.spki = must(tb, func() ([]byte, error) { return x509.MarshalPKIXPublicKey(r.key.Public()) })
	}
	if r.attrs == nil {
		r.attrs = []asn1.RawValue{}
		if len(r.exts) > 0 {
			r.attrs = append(r.attrs, extRequest(tb, r.exts...))
		}
	}
	if r.alg == nil {
		r.alg = defaultAlg(r.key)
	}
	tbs := marshal(tb, tbsRequest{Version: r.version, Subject: asn1.RawValue{FullBytes: r.subject},
		PublicKey: asn1.RawValue{FullBytes: r.spki}, Attributes: r.attrs})
	sig := sign(tb, r.key, *r.alg, tbs)
	return marshal(tb, signedRequest{TBS: asn1.RawValue{FullBytes: tbs}, Algorithm: r.alg.id,
		Signature: asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
}

func defaultAlg(k crypto.Signer) *sigAlg {
	switch k.(type) {
	case *rsa.PrivateKey:
		return &algSHA256WithRSA
	case ed25519.PrivateKey:
		return &algEd25519
	}
	return &algECDSAWithSHA256
}

func sign(tb testing.TB, k crypto.Signer, alg sigAlg, tbs []byte) []byte {
	tb.Helper()
	if alg.garbage {
		b := make([]byte, 64)
		_, _ = rand.Read(b)
		return b
	}
	var digest []byte
	switch alg.hash {
	case 0:
		digest = tbs
	case crypto.MD5:
		h := md5.Sum(tbs)
		digest = h[:]
	case crypto.SHA1:
		h := sha1.Sum(tbs)
		digest = h[:]
	case crypto.SHA256:
		h := sha256.Sum256(tbs)
		digest = h[:]
	default:
		tb.Fatalf("no hash %v in the test builder", alg.hash)
	}
	var opts crypto.SignerOpts = alg.hash
	if alg.pss {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: alg.hash}
	}
	if rk, ok := k.(*rsa.PrivateKey); ok && !alg.pss {
		// rsa.PrivateKey.Sign refuses MD5 through crypto.Signer on some builds; SignPKCS1v15 takes any hash.
		return must(tb, func() ([]byte, error) { return rsa.SignPKCS1v15(rand.Reader, rk, alg.hash, digest) })
	}
	return must(tb, func() ([]byte, error) { return k.Sign(rand.Reader, digest, opts) })
}

// ext is an extension with a DER value.
func ext(tb testing.TB, id asn1.ObjectIdentifier, critical bool, value any) pkix.Extension {
	tb.Helper()
	v, ok := value.([]byte)
	if !ok {
		v = marshal(tb, value)
	}
	return pkix.Extension{Id: id, Critical: critical, Value: v}
}

// extRequest is a PKCS #9 extensionRequest attribute (RFC 2985 §5.4.2) holding exts.
func extRequest(tb testing.TB, exts ...pkix.Extension) asn1.RawValue {
	tb.Helper()
	return attribute(tb, oidExtensionRequest, marshal(tb, exts))
}

// attribute is a PKCS #10 Attribute (RFC 2986 §4.1) with the given DER values.
func attribute(tb testing.TB, id asn1.ObjectIdentifier, values ...[]byte) asn1.RawValue {
	tb.Helper()
	raw := make([]asn1.RawValue, len(values))
	for i, v := range values {
		raw[i] = asn1.RawValue{FullBytes: v}
	}
	return asn1.RawValue{FullBytes: marshal(tb, struct {
		ID     asn1.ObjectIdentifier
		Values []asn1.RawValue `asn1:"set"`
	}{id, raw})}
}

// generalName is one GeneralName (RFC 5280 §4.2.1.6): a context-specific tag over content.
func generalName(tag int, compound bool, content []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: compound, Bytes: content}
}

func uriName(s string) asn1.RawValue { return generalName(6, false, []byte(s)) }

// san is a subjectAltName extension holding names.
func san(tb testing.TB, critical bool, names ...asn1.RawValue) pkix.Extension {
	tb.Helper()
	if names == nil {
		names = []asn1.RawValue{}
	}
	return ext(tb, oidSAN, critical, names)
}

// keyUsage is a keyUsage extension with the given bits (RFC 5280 §4.2.1.3) set.
func keyUsage(tb testing.TB, bits ...int) pkix.Extension {
	tb.Helper()
	n := 0
	for _, b := range bits {
		n = max(n, b+1)
	}
	bs := asn1.BitString{Bytes: make([]byte, (n+7)/8), BitLength: n}
	for _, b := range bits {
		bs.Bytes[b/8] |= 0x80 >> (b % 8)
	}
	return ext(tb, oidKeyUsage, true, bs)
}

func extKeyUsage(tb testing.TB, oids ...asn1.ObjectIdentifier) pkix.Extension {
	tb.Helper()
	if oids == nil {
		oids = []asn1.ObjectIdentifier{}
	}
	return ext(tb, oidExtKeyUsage, false, oids)
}

// rsaKeyWithExponent returns a 2048-bit RSA key with public exponent e, which crypto/rsa never generates.
func rsaKeyWithExponent(tb testing.TB, e int) *rsa.PrivateKey {
	tb.Helper()
	one, bigE := big.NewInt(1), big.NewInt(int64(e))
	for {
		p := must(tb, func() (*big.Int, error) { return rand.Prime(rand.Reader, 1024) })
		q := must(tb, func() (*big.Int, error) { return rand.Prime(rand.Reader, 1024) })
		n := new(big.Int).Mul(p, q)
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(bigE, phi)
		if d == nil || n.BitLen() != 2048 {
			continue
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: e}, D: d, Primes: []*big.Int{p, q}}
		k.Precompute()
		if err := k.Validate(); err != nil {
			tb.Fatal(err)
		}
		return k
	}
}

// spkiDER is a SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) with any algorithm and key bits.
func spkiDER(tb testing.TB, alg pkix.AlgorithmIdentifier, key []byte) []byte {
	tb.Helper()
	return marshal(tb, struct {
		Algorithm pkix.AlgorithmIdentifier
		Key       asn1.BitString
	}{alg, asn1.BitString{Bytes: key, BitLength: 8 * len(key)}})
}

// rsaSPKI is an RSA public key with any modulus and exponent (RFC 8017 §A.1.1).
func rsaSPKI(tb testing.TB, n *big.Int, e int) []byte {
	tb.Helper()
	key := marshal(tb, struct {
		N *big.Int
		E int
	}{n, e})
	return spkiDER(tb, pkcs1(0, 1).id, key)
}

// dsaSPKI is a DSA public key (RFC 3279 §2.3.2) with small made-up domain parameters: enough to parse.
func dsaSPKI(tb testing.TB) []byte {
	tb.Helper()
	params := marshal(tb, struct{ P, Q, G *big.Int }{big.NewInt(23), big.NewInt(11), big.NewInt(4)})
	return spkiDER(tb, pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1},
		Parameters: asn1.RawValue{FullBytes: params}}, marshal(tb, big.NewInt(8)))
}

func ecKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	return must(tb, func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
}

func marshal(tb testing.TB, v any) []byte {
	tb.Helper()
	return must(tb, func() ([]byte, error) { return asn1.Marshal(v) })
}

func must[T any](tb testing.TB, f func() (T, error)) T {
	tb.Helper()
	v, err := f()
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

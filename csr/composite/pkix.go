package composite

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// marshalECPrivateKey encodes the ECDSA component as the draft requires (Section 5): an RFC 5915 ECPrivateKey
// with version 1, the fixed-length scalar and the named curve, without the publicKey field.
func marshalECPrivateKey(p *algParams, k *ecdsa.PrivateKey) ([]byte, error) {
	d, err := k.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: ECDSA private key: %v", ErrMalformed, err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1OctetString(d)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(p.curveOID)
		})
	})
	return b.Bytes()
}

// parseECPrivateKey is the strict inverse of marshalECPrivateKey: anything else, including a present
// publicKey field, is ErrMalformed.
func parseECPrivateKey(p *algParams, der []byte) (*ecdsa.PrivateKey, error) {
	in := cryptobyte.String(der)
	var seq, d, params cryptobyte.String
	var version int64
	var curve asn1.ObjectIdentifier
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(&version) || version != 1 ||
		!seq.ReadASN1(&d, cbasn1.OCTET_STRING) || len(d) != p.coordinateSize() ||
		!seq.ReadASN1(&params, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!params.ReadASN1ObjectIdentifier(&curve) || !params.Empty() || !seq.Empty() {
		return nil, fmt.Errorf("%w: %s private key: the ECDSA part is not an ECPrivateKey (RFC 5915) "+
			"with version 1, a %d-byte key, the named curve and no public key", ErrMalformed, p.name,
			p.coordinateSize())
	}
	if !curve.Equal(p.curveOID) {
		return nil, fmt.Errorf("%w: %s private key names curve %s", ErrMalformed, p.name, curve)
	}
	k, err := ecdsa.ParseRawPrivateKey(p.curve, d)
	if err != nil {
		return nil, fmt.Errorf("%w: %s private key, ECDSA part: %v", ErrMalformed, p.name, err)
	}
	return k, nil
}

// readAlgorithmIdentifier reads an AlgorithmIdentifier and returns its OID, whether it has parameters, and
// its DER encoding. The draft (Section 6.3) and RFC 9881 require absent parameters for their OIDs: callers
// refuse parameters once they know the OID is one of those (an unknown OID is ErrUnsupported either way).
func readAlgorithmIdentifier(s *cryptobyte.String) (oid asn1.ObjectIdentifier, params bool, raw []byte, err error) {
	var el, ai cryptobyte.String
	if !s.ReadASN1Element(&el, cbasn1.SEQUENCE) {
		return nil, false, nil, fmt.Errorf("%w: missing AlgorithmIdentifier", ErrMalformed)
	}
	ai = el
	if !ai.ReadASN1(&ai, cbasn1.SEQUENCE) || !ai.ReadASN1ObjectIdentifier(&oid) {
		return nil, false, nil, fmt.Errorf("%w: malformed AlgorithmIdentifier", ErrMalformed)
	}
	return oid, !ai.Empty(), el, nil
}

func errParams(oid asn1.ObjectIdentifier) error {
	return fmt.Errorf("%w: AlgorithmIdentifier %s has parameters; they must be absent", ErrMalformed, oid)
}

func addAlgorithmIdentifier(b *cryptobyte.Builder, oid asn1.ObjectIdentifier) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oid) })
}

// algorithmIdentifier returns the DER AlgorithmIdentifier of oid with absent parameters.
func algorithmIdentifier(oid asn1.ObjectIdentifier) []byte {
	var b cryptobyte.Builder
	addAlgorithmIdentifier(&b, oid)
	return b.BytesOrPanic()
}

// ParsePKIXPublicKey parses a DER SubjectPublicKeyInfo (RFC 5280, Section 4.1.2.7) holding a composite key
// (returned as *PublicKey) or a pure ML-DSA key (RFC 9881, returned as *MLDSAPublicKey). Other algorithms are
// ErrUnsupported: use crypto/x509 for them.
func ParsePKIXPublicKey(der []byte) (crypto.PublicKey, error) {
	in := cryptobyte.String(der)
	var spki cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&spki, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, fmt.Errorf("%w: SubjectPublicKeyInfo is not one DER SEQUENCE", ErrMalformed)
	}
	oid, hasParams, _, err := readAlgorithmIdentifier(&spki)
	if err != nil {
		return nil, err
	}
	if !spki.ReadASN1BitString(&bits) || !spki.Empty() || bits.BitLength%8 != 0 {
		return nil, fmt.Errorf("%w: SubjectPublicKeyInfo key is not a whole-byte BIT STRING", ErrMalformed)
	}
	alg, isComposite := algorithmByOID(oid)
	params, isMLDSA := mldsaByOID(oid)
	switch {
	case !isComposite && !isMLDSA:
		return nil, fmt.Errorf("%w: public key algorithm %s", ErrUnsupported, oid)
	case hasParams:
		return nil, errParams(oid)
	case isComposite:
		return NewPublicKey(alg, bits.Bytes)
	}
	return NewMLDSAPublicKey(params, bits.Bytes)
}

// MarshalPKIXPublicKey encodes a *PublicKey or an *MLDSAPublicKey as a DER SubjectPublicKeyInfo with absent
// algorithm parameters.
func MarshalPKIXPublicKey(pub crypto.PublicKey) ([]byte, error) {
	var oid asn1.ObjectIdentifier
	var raw []byte
	switch k := pub.(type) {
	case *PublicKey:
		oid, raw = k.alg.oid, k.raw
	case *MLDSAPublicKey:
		oid, raw = k.params.oid, k.raw
	default:
		return nil, fmt.Errorf("%w: public key type %T", ErrUnsupported, pub)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addAlgorithmIdentifier(b, oid)
		b.AddASN1BitString(raw)
	})
	return b.Bytes()
}

// ParsePKCS8PrivateKey parses a DER OneAsymmetricKey (RFC 5958; version 1 is PKCS #8 PrivateKeyInfo) holding
// a composite key (returned as *PrivateKey, the draft's Section 6.3) or a pure ML-DSA key in seed form
// (returned as *MLDSAPrivateKey, RFC 9881). An optional publicKey must match the private key; attributes are
// ignored.
func ParsePKCS8PrivateKey(der []byte) (crypto.Signer, error) {
	in := cryptobyte.String(der)
	var seq, priv cryptobyte.String
	var version int64
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() || !seq.ReadASN1Integer(&version) ||
		(version != 0 && version != 1) {
		return nil, fmt.Errorf("%w: not a DER OneAsymmetricKey of version 0 or 1", ErrMalformed)
	}
	oid, hasParams, _, err := readAlgorithmIdentifier(&seq)
	if err != nil {
		return nil, err
	}
	var pubBits asn1.BitString
	hasPub := false
	if !seq.ReadASN1(&priv, cbasn1.OCTET_STRING) ||
		!seq.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, fmt.Errorf("%w: malformed OneAsymmetricKey", ErrMalformed)
	}
	if seq.PeekASN1Tag(cbasn1.Tag(1).ContextSpecific()) {
		var raw cryptobyte.String
		if version != 1 || !seq.ReadASN1Element(&raw, cbasn1.Tag(1).ContextSpecific()) {
			return nil, fmt.Errorf("%w: OneAsymmetricKey publicKey needs version 1", ErrMalformed)
		}
		// Re-tag a copy of the [1] IMPLICIT BIT STRING as a universal one to read it.
		raw = bytes.Clone(raw)
		raw[0] = byte(cbasn1.BIT_STRING)
		if !raw.ReadASN1BitString(&pubBits) || pubBits.BitLength%8 != 0 {
			return nil, fmt.Errorf("%w: malformed OneAsymmetricKey publicKey", ErrMalformed)
		}
		hasPub = true
	}
	if !seq.Empty() {
		return nil, fmt.Errorf("%w: trailing data in OneAsymmetricKey", ErrMalformed)
	}
	alg, isComposite := algorithmByOID(oid)
	params, isMLDSA := mldsaByOID(oid)
	var key crypto.Signer
	var pub []byte
	switch {
	case !isComposite && !isMLDSA:
		return nil, fmt.Errorf("%w: private key algorithm %s", ErrUnsupported, oid)
	case hasParams:
		return nil, errParams(oid)
	case isComposite:
		k, err := NewPrivateKey(alg, priv)
		if err != nil {
			return nil, err
		}
		key, pub = k, k.pub.raw
	default:
		k, err := parseMLDSAPrivateKey(params, priv)
		if err != nil {
			return nil, err
		}
		key, pub = k, k.pub.raw
	}
	if hasPub && string(pubBits.Bytes) != string(pub) {
		return nil, fmt.Errorf("%w: OneAsymmetricKey publicKey does not match the private key", ErrMalformed)
	}
	return key, nil
}

// parseMLDSAPrivateKey reads RFC 9881's ML-DSA-PrivateKey; only the seed choice ([0] IMPLICIT OCTET STRING)
// is supported, because the draft and meshca keep ML-DSA keys as seeds.
func parseMLDSAPrivateKey(p MLDSAParameters, b []byte) (*MLDSAPrivateKey, error) {
	in := cryptobyte.String(b)
	var seed cryptobyte.String
	switch {
	case in.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()):
		if !in.ReadASN1(&seed, cbasn1.Tag(0).ContextSpecific()) || !in.Empty() {
			return nil, fmt.Errorf("%w: malformed %s private key seed", ErrMalformed, p)
		}
		return NewMLDSAPrivateKey(p, seed)
	case in.PeekASN1Tag(cbasn1.OCTET_STRING), in.PeekASN1Tag(cbasn1.SEQUENCE):
		return nil, fmt.Errorf("%w: %s private key without its seed alone (expandedKey or both); "+
			"export the seed form", ErrUnsupported, p)
	}
	return nil, fmt.Errorf("%w: %s private key is not an RFC 9881 ML-DSA-PrivateKey", ErrMalformed, p)
}

// MarshalPKCS8PrivateKey encodes a *PrivateKey (the draft's serialization) or an *MLDSAPrivateKey (RFC 9881
// seed form) as a version 0 OneAsymmetricKey without attributes or public key.
func MarshalPKCS8PrivateKey(key crypto.Signer) ([]byte, error) {
	var oid asn1.ObjectIdentifier
	var priv []byte
	switch k := key.(type) {
	case *PrivateKey:
		oid, priv = k.pub.alg.oid, k.Bytes()
	case *MLDSAPrivateKey:
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(k.seed[:]) })
		oid, priv = k.pub.params.oid, b.BytesOrPanic()
	default:
		return nil, fmt.Errorf("%w: private key type %T", ErrUnsupported, key)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		addAlgorithmIdentifier(b, oid)
		b.AddASN1OctetString(priv)
	})
	return b.Bytes()
}

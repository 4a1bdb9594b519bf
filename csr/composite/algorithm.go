package composite

import (
	"crypto"
	"crypto/elliptic"
	_ "crypto/sha256" // PH and the ECDSA digest for the P-256 combinations
	_ "crypto/sha512" // PH for the -SHA512 combinations and the ECDSA digest for P-384 and P-521
	"encoding/asn1"
)

// Algorithm is one composite ML-DSA signature algorithm of draft-ietf-lamps-pq-composite-sigs, Section 7.
// The zero Algorithm is invalid; obtain one from MLDSA65ECDSAP256SHA512 or its siblings.
type Algorithm struct{ p *algParams }

// algParams is one row of the draft's Section 7: the OID, the signature label, the pre-hash PH and the two
// components.
type algParams struct {
	name     string
	oid      asn1.ObjectIdentifier
	label    string
	ph       crypto.Hash
	mldsa    *mldsaParams
	curve    elliptic.Curve
	curveOID asn1.ObjectIdentifier
	ecHash   crypto.Hash // the hash of the traditional algorithm, e.g. ecdsa-with-SHA256
}

// Named curves (RFC 5480, Section 2.1.1.1), the ECPrivateKey parameters of the traditional component.
var (
	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521 = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
)

// The composite algorithms with an ECDSA component on a NIST curve: the only family that Go's standard
// library and circl cover completely. meshca issues and accepts only id-MLDSA65-ECDSA-P256-SHA512; the others
// share every line of code and are kept so that the draft's test vectors exercise the SHA-256 pre-hash and the
// P-384 and P-521 digests too.
var (
	algMLDSA44P256 = &algParams{"MLDSA44-ECDSA-P256-SHA256", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 6, 40},
		"COMPSIG-MLDSA44-ECDSA-P256-SHA256", crypto.SHA256, params44, elliptic.P256(), oidP256, crypto.SHA256}
	algMLDSA65P256 = &algParams{"MLDSA65-ECDSA-P256-SHA512", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 6, 45},
		"COMPSIG-MLDSA65-ECDSA-P256-SHA512", crypto.SHA512, params65, elliptic.P256(), oidP256, crypto.SHA256}
	algMLDSA65P384 = &algParams{"MLDSA65-ECDSA-P384-SHA512", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 6, 46},
		"COMPSIG-MLDSA65-ECDSA-P384-SHA512", crypto.SHA512, params65, elliptic.P384(), oidP384, crypto.SHA384}
	algMLDSA87P384 = &algParams{"MLDSA87-ECDSA-P384-SHA512", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 6, 49},
		"COMPSIG-MLDSA87-ECDSA-P384-SHA512", crypto.SHA512, params87, elliptic.P384(), oidP384, crypto.SHA384}
	algMLDSA87P521 = &algParams{"MLDSA87-ECDSA-P521-SHA512", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 6, 54},
		"COMPSIG-MLDSA87-ECDSA-P521-SHA512", crypto.SHA512, params87, elliptic.P521(), oidP521, crypto.SHA512}

	algorithms = []*algParams{algMLDSA44P256, algMLDSA65P256, algMLDSA65P384, algMLDSA87P384, algMLDSA87P521}
)

// MLDSA65ECDSAP256SHA512 returns id-MLDSA65-ECDSA-P256-SHA512 (OID 1.3.6.1.5.5.7.6.45): ML-DSA-65 with
// ECDSA P-256 (ecdsa-with-SHA256), message pre-hashed with SHA-512. It is the composite meshca issues.
func MLDSA65ECDSAP256SHA512() Algorithm { return Algorithm{algMLDSA65P256} }

// MLDSA44ECDSAP256SHA256 returns id-MLDSA44-ECDSA-P256-SHA256 (OID 1.3.6.1.5.5.7.6.40).
func MLDSA44ECDSAP256SHA256() Algorithm { return Algorithm{algMLDSA44P256} }

// MLDSA65ECDSAP384SHA512 returns id-MLDSA65-ECDSA-P384-SHA512 (OID 1.3.6.1.5.5.7.6.46).
func MLDSA65ECDSAP384SHA512() Algorithm { return Algorithm{algMLDSA65P384} }

// MLDSA87ECDSAP384SHA512 returns id-MLDSA87-ECDSA-P384-SHA512 (OID 1.3.6.1.5.5.7.6.49).
func MLDSA87ECDSAP384SHA512() Algorithm { return Algorithm{algMLDSA87P384} }

// MLDSA87ECDSAP521SHA512 returns id-MLDSA87-ECDSA-P521-SHA512 (OID 1.3.6.1.5.5.7.6.54).
func MLDSA87ECDSAP521SHA512() Algorithm { return Algorithm{algMLDSA87P521} }

// Algorithms returns every composite algorithm this package implements, meshca's own first.
func Algorithms() []Algorithm {
	return []Algorithm{{algMLDSA65P256}, {algMLDSA44P256}, {algMLDSA65P384}, {algMLDSA87P384}, {algMLDSA87P521}}
}

// String returns the draft's name without its "id-" prefix, e.g. "MLDSA65-ECDSA-P256-SHA512".
func (a Algorithm) String() string {
	if a.p == nil {
		return "invalid"
	}
	return a.p.name
}

// OID returns the algorithm's object identifier, used both as the SubjectPublicKeyInfo algorithm and as the
// signature algorithm, always with absent parameters (draft Section 6.3).
func (a Algorithm) OID() asn1.ObjectIdentifier {
	if a.p == nil {
		return nil
	}
	return append(asn1.ObjectIdentifier(nil), a.p.oid...)
}

// MLDSAParameters returns the parameter set of the algorithm's ML-DSA component.
func (a Algorithm) MLDSAParameters() MLDSAParameters {
	if a.p == nil {
		return MLDSAParameters{}
	}
	return MLDSAParameters{a.p.mldsa}
}

func algorithmByOID(oid asn1.ObjectIdentifier) (Algorithm, bool) {
	for _, p := range algorithms {
		if p.oid.Equal(oid) {
			return Algorithm{p}, true
		}
	}
	return Algorithm{}, false
}

// coordinateSize is the byte length of one field element, and of the ECDSA private scalar, on the curve.
func (p *algParams) coordinateSize() int { return (p.curve.Params().BitSize + 7) / 8 }

// publicKeySize is the exact length of the composite public key: ML-DSA key || 0x04 || X || Y.
func (p *algParams) publicKeySize() int { return p.mldsa.publicKeySize + 1 + 2*p.coordinateSize() }

// maxECDSASignatureSize bounds the DER Ecdsa-Sig-Value: SEQUENCE of two INTEGERs, each at most one byte longer
// than the order (a leading zero), with lengths of at most two bytes.
func (p *algParams) maxECDSASignatureSize() int { return 3 + 2*(3+p.coordinateSize()+1) }

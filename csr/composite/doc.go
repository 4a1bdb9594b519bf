// Package composite implements the composite ML-DSA signatures of draft-ietf-lamps-pq-composite-sigs (the
// text after IESG review) for meshca's hybrid PKI: id-MLDSA65-ECDSA-P256-SHA512 keys in CSRs and for a
// composite issuing CA, plus pure ML-DSA (FIPS 204, RFC 9881) as its component and for checking ML-DSA
// signatures. It also fills the gaps crypto/x509 leaves for these algorithms: verifying a certificate signed
// by a composite or ML-DSA key, creating a certificate signed by a composite CA, and parsing and creating a
// PKCS #10 request whose key and self-signature are composite. It imports neither gRPC nor Kubernetes.
//
// It lives under csr/ because DESIGN.md fixes the top-level layout and gives csr/ the key policy, composites
// included; it does not import csr, so csr, backends and the load tester can all import it.
//
// # Experimental
//
// Composite keys follow an Internet-Draft whose encodings may still change before it becomes an RFC.
// meshca accepts composite CSRs only with issuance.experimentalComposite: true; the gate belongs to the
// caller, this package has none. Envoy cannot load ML-DSA or composite certificates (envoy#42893), so the
// composite roots are published apart from the root-cert.pem Envoy reads.
//
// # Construction (draft Sections 3 to 7)
//
// A composite signature of message M with application context ctx (empty in X.509 and PKCS #10) is
//
//	M'  = Prefix || Label || len(ctx) || ctx || PH(M)
//	sig = ML-DSA.Sign(mldsaSK, M', ctx=Label) || ECDSA.Sign(ecSK, Hash(M'))
//
// with Prefix the 32 ASCII bytes "CompositeAlgorithmSignatures2025", len(ctx) one byte, and for
// id-MLDSA65-ECDSA-P256-SHA512 (OID 1.3.6.1.5.5.7.6.45): Label "COMPSIG-MLDSA65-ECDSA-P256-SHA512", PH SHA-512,
// ML-DSA-65 in its pure, hedged form, ECDSA P-256 with ecdsa-with-SHA256 (Hash SHA-256) and a DER
// Ecdsa-Sig-Value. Verification requires both components. The encodings are plain concatenations:
//
//	public key  = ML-DSA-65 public key (1952 bytes) || uncompressed P-256 point (65 bytes)
//	private key = ML-DSA seed (32 bytes) || DER ECPrivateKey (RFC 5915: version 1, 32-byte scalar,
//	              [0] namedCurve, no publicKey)
//	signature   = ML-DSA-65 signature (3309 bytes) || DER ECDSA signature
//
// In a SubjectPublicKeyInfo the BIT STRING holds the public key and in PKCS #8 the privateKey OCTET STRING
// holds the private key, without further wrapping. Every AlgorithmIdentifier (key and signature) has absent
// parameters. The draft's test vectors (testdata/README.md) fix all of this; they pass for every supported
// algorithm, and each signature and each x5c self-signature fails after one flipped bit.
//
// # Supported algorithms
//
//	id-MLDSA65-ECDSA-P256-SHA512             supported: the composite meshca issues and accepts
//	id-MLDSA44-ECDSA-P256-SHA256             supported (same code; exercises PH = SHA-256)
//	id-MLDSA65-ECDSA-P384-SHA512             supported (same code; ecdsa-with-SHA384)
//	id-MLDSA87-ECDSA-P384-SHA512             supported (same code)
//	id-MLDSA87-ECDSA-P521-SHA512             supported (same code; ecdsa-with-SHA512)
//	id-ML-DSA-44, id-ML-DSA-65, id-ML-DSA-87 supported as pure ML-DSA (RFC 9881, seed-form private keys)
//	id-MLDSA*-RSA*-PSS / -PKCS15             skipped: RSA component, meshca issues no RSA composites
//	id-MLDSA44/65-Ed25519-SHA512             skipped: EdDSA component, meshca issues ECDSA composites only
//	id-MLDSA87-Ed448-SHAKE256                skipped: Ed448 is not in Go's standard library
//	id-MLDSA65/87-ECDSA-brainpool*           skipped: brainpool curves are not in Go's standard library
//
// The key policy (which of the supported algorithms meshca certifies) is csr's, not this package's.
//
// # ML-DSA implementation
//
// ML-DSA comes from github.com/cloudflare/circl, imported by mldsa.go alone. MLDSAParameters, Options,
// NewMLDSAPublicKey, NewMLDSAPrivateKey and VerifyMLDSA mirror Go 1.27's crypto/mldsa (parameter sets, seed
// keys, a context in Options), so moving to the standard library replaces the constructors in mldsa.go, and
// pure ML-DSA certificates and CSRs then go through crypto/x509 itself.
//
// Composite ML-DSA is EUF-CMA but not SUF-CMA secure (draft Section 10.2): anyone can turn a valid signature
// into another valid signature of the same message (the ECDSA part is malleable). Do not base a security
// decision on a hash of a certificate's full DER, signature included.
package composite

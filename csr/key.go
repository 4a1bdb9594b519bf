package csr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/mldsa"
	"crypto/rsa"
	"fmt"
	"slices"
)

// keyTypes is every KeyType CheckKey returns: a fixed set, so that metrics labelled by key type stay bounded.
var keyTypes = []string{"RSA-2048", "RSA-3072", "RSA-4096", "RSA-other", "ECDSA-P256", "ECDSA-P384", "Ed25519",
	"ML-DSA-44", "ML-DSA-65", "ML-DSA-87", compositeKeyType}

// KeyTypes lists every KeyType a Request can carry, for metrics to create their labels up front. RSA keys
// of sizes other than 2048, 3072 and 4096 bits share "RSA-other".
func KeyTypes() []string { return slices.Clone(keyTypes) }

// CheckKey applies meshca's key policy and returns the key's KeyType. Allowed: RSA of 2048 to 8192 bits with
// public exponent 65537, ECDSA on P-256 or P-384, and Ed25519.
func CheckKey(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < 2048 {
			return "", fmt.Errorf("%w: RSA key of %d bits; use at least 2048", ErrKeyPolicy, bits)
		}
		if bits > 8192 {
			return "", fmt.Errorf("%w: RSA key of %d bits; use at most 8192", ErrKeyPolicy, bits)
		}
		if k.E != 65537 {
			return "", fmt.Errorf("%w: RSA public exponent %d; use 65537", ErrKeyPolicy, k.E)
		}
		switch bits {
		case 2048, 3072, 4096:
			return fmt.Sprintf("RSA-%d", bits), nil
		}
		return "RSA-other", nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ECDSA-P256", nil
		case elliptic.P384():
			return "ECDSA-P384", nil
		}
		return "", fmt.Errorf("%w: ECDSA curve %s; use P-256 or P-384", ErrKeyPolicy, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return "Ed25519", nil
	case *mldsa.PublicKey:
		return "", fmt.Errorf("%w: %s key; meshca certifies ML-DSA keys only when issuance.mldsa is true",
			ErrKeyPolicy, k.Parameters())
	case nil:
		return "", fmt.Errorf("%w: a public key algorithm meshca does not know; use ECDSA P-256/P-384, RSA >= 2048 "+
			"or Ed25519", ErrKeyPolicy)
	}
	return "", fmt.Errorf("%w: key type %T; use ECDSA P-256/P-384, RSA >= 2048 or Ed25519", ErrKeyPolicy, pub)
}

// checkMLDSA is CheckKey for ML-DSA keys (RFC 9881), which Options.MLDSA allows: all three parameter sets.
func checkMLDSA(k *mldsa.PublicKey) string {
	switch k.Parameters() {
	case mldsa.MLDSA44():
		return "ML-DSA-44"
	case mldsa.MLDSA65():
		return "ML-DSA-65"
	}
	return "ML-DSA-87"
}

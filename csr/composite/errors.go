package composite

import "errors"

// Every error from a parser or verifier of this package wraps one of these sentinels; match them with
// errors.Is. Signing and key generation can also fail with the error of the random source.
var (
	// ErrMalformed means an encoding (key, signature, SubjectPublicKeyInfo, PKCS #8, CSR or certificate) is
	// not well-formed DER or does not have the shape the draft or RFC requires.
	ErrMalformed = errors.New("composite: malformed encoding")
	// ErrUnsupported means a well-formed input names an algorithm, key form or option this package does not
	// implement (for example a composite with RSA, or an ML-DSA private key without its seed).
	ErrUnsupported = errors.New("composite: unsupported algorithm or key form")
	// ErrInvalidSignature means a signature does not verify, or was made with an algorithm other than the
	// key's.
	ErrInvalidSignature = errors.New("composite: invalid signature")
	// ErrContextTooLong means an application context string is longer than the 255 bytes FIPS 204 and the
	// draft allow.
	ErrContextTooLong = errors.New("composite: context longer than 255 bytes")
	// ErrInvalidChain means a certificate chain is not a valid certification path (VerifyChain); it is
	// wrapped together with the error of the failed step when there is one (ErrInvalidSignature, ...).
	ErrInvalidChain = errors.New("composite: invalid certificate chain")
)

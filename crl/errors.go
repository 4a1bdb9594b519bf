package crl

import "errors"

// Sentinel errors. Functions wrap them with detail; match them with errors.Is.
var (
	// ErrInvalidRequest means a revocation, quarantine or issuance record was malformed (no serial, an empty
	// or overlong identity, an unknown CA).
	ErrInvalidRequest = errors.New("invalid revocation request")
	// ErrInvalidReason means a reason code outside RFC 5280 §5.3.1's usable set.
	ErrInvalidReason = errors.New("invalid revocation reason")
	// ErrUnknownIssuer means a serial could not be tied to an issuing CA: it is not in the inventory and the
	// request named no CA.
	ErrUnknownIssuer = errors.New("issuing CA of the certificate unknown")
	// ErrCorrupt means the persisted state does not parse. It is never overwritten: restore it from a backup,
	// or move it away to start empty (losing the revocations it held).
	ErrCorrupt = errors.New("revocation state is corrupt")
	// ErrLocked means another process holds the state file.
	ErrLocked = errors.New("revocation state file is locked by another process")
	// ErrContended means an update lost the optimistic-concurrency race too many times in a row.
	ErrContended = errors.New("revocation state update contended")
	// ErrBadCRL means a signer or source returned something that is not a valid CRL of the expected CA.
	ErrBadCRL = errors.New("invalid CRL")

	// ErrMissingCRL means a CA of the served chain has no CRL signed by it. With CRL_CHECK_ALL, Envoy then
	// refuses every certificate that chains through that CA.
	ErrMissingCRL = errors.New("no CRL for CA")
	// ErrStaleCRL means the only CRLs of a CA are past their nextUpdate; Envoy and ztunnel refuse them.
	ErrStaleCRL = errors.New("CRL past its nextUpdate")
	// ErrCRLNotYetValid means the only CRLs of a CA have a thisUpdate in the future (clock skew).
	ErrCRLNotYetValid = errors.New("CRL not yet valid")
	// ErrCARevoked means a CA of the served chain is listed in its issuer's CRL: every certificate under it
	// is refused.
	ErrCARevoked = errors.New("CA certificate revoked by its issuer")
	// ErrRevoked means a certificate is listed in the current CRL of its issuer.
	ErrRevoked = errors.New("certificate revoked")
)

package ca

import (
	"context"
	"errors"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr"
)

var (
	// ErrInvalidRequest means the request is malformed (negative lifetime, bad metadata).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrPermissionDenied means the caller asked for something it may not have. It is wrapped together with
	// one of the more precise errors below.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrIdentityMismatch means the CSR asks for an identity other than the caller's.
	ErrIdentityMismatch = errors.New("CSR identity does not match the caller")
	// ErrForbiddenSAN means the CSR asks for DNS, IP, email or extra URI SANs that policy does not allow.
	ErrForbiddenSAN = errors.New("CSR asks for a SAN that is not allowed")
	// ErrCARequested means the CSR asks for a CA certificate.
	ErrCARequested = errors.New("CSR asks for a CA certificate")
)

// Reason returns a short, stable label for why a request failed, for metrics and audit records.
func Reason(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, authn.ErrUnauthenticated):
		return "unauthenticated"
	case errors.Is(err, authn.ErrUnavailable):
		return "authn_unavailable"
	case errors.Is(err, csr.ErrKeyPolicy):
		return "key_policy"
	case errors.Is(err, csr.ErrInvalidCSR):
		return "invalid_csr"
	case errors.Is(err, ErrIdentityMismatch):
		return "identity_mismatch"
	case errors.Is(err, ErrForbiddenSAN):
		return "forbidden_san"
	case errors.Is(err, ErrCARequested):
		return "ca_requested"
	case errors.Is(err, authn.ErrImpersonationDenied):
		return "impersonation_denied"
	case errors.Is(err, ErrInvalidRequest):
		return "invalid_request"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, backends.ErrUnavailable):
		return "backend_unavailable"
	case errors.Is(err, backends.ErrRefused):
		return "backend_refused"
	case errors.Is(err, backends.ErrBadChain):
		return "bad_chain"
	}
	return "internal"
}

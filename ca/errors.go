package ca

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/policy"
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
	// ErrBackendNotAllowed means a registration authority's signer routing and the deciding policy rule
	// have no backend in common: the rule does not allow any backend the signer may use.
	ErrBackendNotAllowed = errors.New("no backend is allowed by both the policy rule and the signer's routing")
)

// Outcomes of a request, as counted in meshca_csr_requests_total{result} and written in audit records.
const (
	// OutcomeIssued: a certificate was returned.
	OutcomeIssued = "issued"
	// OutcomeRejected: the caller is at fault (credential, CSR or request); a retry will not help.
	OutcomeRejected = "rejected"
	// OutcomeFailed: meshca or a backend is at fault; a retry may help.
	OutcomeFailed = "failed"
)

// Class is what meshca does with one kind of request failure: how it is labelled, counted and shown to the
// caller. Every error of the issuance path falls into exactly one Class (see Classify).
type Class struct {
	// Reason is the stable label in metrics and audit records, e.g. "identity_mismatch".
	Reason string
	// Outcome is OutcomeIssued, OutcomeRejected or OutcomeFailed.
	Outcome string
	// Code is the gRPC status code the caller receives.
	Code codes.Code
	// Message is the fixed caller-facing message. Empty means the error's own text is shown: only for
	// errors that describe the caller's own request, so that the caller can fix it.
	Message string
	// citadel is the istiod-compatible counter the failure increments.
	citadel citadelCounter
}

type citadelCounter int

const (
	citadelNone citadelCounter = iota
	citadelSuccess
	citadelAuthnFailure
	citadelParseErr
	citadelIDErr
	citadelSignErr  // citadel_server_csr_sign_err_count{error="CERT_GEN_ERROR"}
	citadelNotReady // citadel_server_csr_sign_err_count{error="CA_NOT_READY"}
)

// citadelSignErrors are istiod's values of citadel_server_csr_sign_err_count's error label that meshca uses
// (istiod's caerror.Error.ErrorType): a signing backend or credential check that is unavailable is a CA not
// ready; every other signing failure is a certificate generation error. istiod's TTL_ERROR and CSR_ERROR do not
// occur: meshca clamps lifetimes and counts CSR problems as citadel_server_csr_parsing_err_count.
var citadelSignErrors = map[citadelCounter]string{citadelSignErr: "CERT_GEN_ERROR", citadelNotReady: "CA_NOT_READY"}

// classes is the one table from errors to their Class; the first entry whose sentinel matches wins, so the
// precise sentinels come before the general ones. istio-agent retries Unavailable, Internal,
// ResourceExhausted, DeadlineExceeded, Aborted and Canceled, and gives up on Unauthenticated, InvalidArgument
// and PermissionDenied: the code matters as much as the message.
var classes = []struct {
	sentinel error
	class    Class
}{
	{authn.ErrUnauthenticated, Class{"unauthenticated", OutcomeRejected, codes.Unauthenticated, "",
		citadelAuthnFailure}},
	{authn.ErrUnavailable, Class{"authn_unavailable", OutcomeFailed, codes.Unavailable,
		"cannot verify credentials right now; retry", citadelNotReady}},
	{csr.ErrKeyPolicy, Class{"key_policy", OutcomeRejected, codes.InvalidArgument, "", citadelParseErr}},
	{csr.ErrUnsupportedRequest, Class{"unsupported_request", OutcomeRejected, codes.PermissionDenied, "",
		citadelParseErr}},
	{csr.ErrInvalidCSR, Class{"invalid_csr", OutcomeRejected, codes.InvalidArgument, "", citadelParseErr}},
	{policy.ErrDenied, Class{"policy_denied", OutcomeRejected, codes.PermissionDenied, "", citadelIDErr}},
	{policy.ErrUnknownSigner, Class{"unknown_signer", OutcomeRejected, codes.InvalidArgument, "", citadelNone}},
	{ErrIdentityMismatch, Class{"identity_mismatch", OutcomeRejected, codes.PermissionDenied, "", citadelIDErr}},
	{ErrForbiddenSAN, Class{"forbidden_san", OutcomeRejected, codes.PermissionDenied, "", citadelIDErr}},
	{ErrCARequested, Class{"ca_requested", OutcomeRejected, codes.PermissionDenied, "", citadelIDErr}},
	{authn.ErrImpersonationDenied, Class{"impersonation_denied", OutcomeRejected, codes.PermissionDenied, "",
		citadelIDErr}},
	{ErrBackendNotAllowed, Class{"backend_not_allowed", OutcomeRejected, codes.PermissionDenied, "", citadelNone}},
	{ErrQuarantined, Class{"quarantined", OutcomeRejected, codes.PermissionDenied, "", citadelIDErr}},
	{ErrPermissionDenied, Class{"permission_denied", OutcomeRejected, codes.PermissionDenied, "", citadelIDErr}},
	{ErrInvalidRequest, Class{"invalid_request", OutcomeRejected, codes.InvalidArgument, "", citadelNone}},
	{ErrRateLimited, Class{"rate_limited", OutcomeRejected, codes.ResourceExhausted, "", citadelNone}},
	{ErrTooManyFailures, Class{"authn_rate_limited", OutcomeRejected, codes.ResourceExhausted, "",
		citadelAuthnFailure}},
	{ErrOverloaded, Class{"overloaded", OutcomeFailed, codes.ResourceExhausted,
		"the CA is at its limit of requests in flight; retry", citadelNone}},
	{context.DeadlineExceeded, Class{"deadline_exceeded", OutcomeFailed, codes.DeadlineExceeded,
		"deadline exceeded while issuing the certificate; retry", citadelSignErr}},
	{context.Canceled, Class{"canceled", OutcomeFailed, codes.Canceled, "request canceled", citadelSignErr}},
	{backends.ErrUnavailable, Class{"backend_unavailable", OutcomeFailed, codes.Unavailable,
		"no signing backend is available; retry", citadelNotReady}},
	{backends.ErrRefused, Class{"backend_refused", OutcomeFailed, codes.Internal,
		"the signing backend refused the request; see the CA's logs", citadelSignErr}},
	{backends.ErrBadChain, Class{"bad_chain", OutcomeFailed, codes.Internal, internalMessage, citadelSignErr}},
}

const internalMessage = "internal error while issuing the certificate; see the CA's logs"

var (
	classOK       = Class{"ok", OutcomeIssued, codes.OK, "", citadelSuccess}
	classInternal = Class{"internal", OutcomeFailed, codes.Internal, internalMessage, citadelSignErr}
)

// Classify returns the Class of err: how the request that ended with err is counted, audited and answered.
// A nil err is the "ok" class; an error matching no sentinel is "internal", shown with a fixed message.
func Classify(err error) Class {
	if err == nil {
		return classOK
	}
	for _, c := range classes {
		if errors.Is(err, c.sentinel) {
			return c.class
		}
	}
	return classInternal
}

// Classes lists every Class Classify can return, so that metrics can be initialised at zero.
func Classes() []Class {
	out := []Class{classOK}
	for _, c := range classes {
		out = append(out, c.class)
	}
	return append(out, classInternal)
}

// Reason returns the stable label for why a request failed ("ok" for nil), for metrics and audit records.
func Reason(err error) string { return Classify(err).Reason }

// CallerMessage is the text the caller sees for err: the error itself when it describes the caller's own
// request, the class's fixed message otherwise (the detail stays in meshca's logs).
func (c Class) CallerMessage(err error) string {
	if c.Message != "" || err == nil {
		return c.Message
	}
	return err.Error()
}

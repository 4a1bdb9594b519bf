package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr"
)

// statusFor maps an issuance error to the gRPC status the caller sees. istio-agent retries Unavailable,
// Internal, ResourceExhausted, DeadlineExceeded, Aborted and Canceled, and gives up on Unauthenticated,
// InvalidArgument and PermissionDenied, so the code matters as much as the message. Messages of caller-side
// errors explain what to fix; server-side failures get a fixed message and the detail goes to the log only.
func statusFor(err error) error {
	code, msg := codes.Internal, "internal error while issuing the certificate; see the CA's logs"
	switch {
	case errors.Is(err, authn.ErrUnauthenticated):
		code, msg = codes.Unauthenticated, err.Error()
	case errors.Is(err, authn.ErrUnavailable):
		code, msg = codes.Unavailable, "cannot verify credentials right now; retry"
	case errors.Is(err, csr.ErrInvalidCSR), errors.Is(err, csr.ErrKeyPolicy), errors.Is(err, ca.ErrInvalidRequest):
		code, msg = codes.InvalidArgument, err.Error()
	case errors.Is(err, ca.ErrPermissionDenied):
		code, msg = codes.PermissionDenied, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		code, msg = codes.DeadlineExceeded, "deadline exceeded while issuing the certificate; retry"
	case errors.Is(err, context.Canceled):
		code, msg = codes.Canceled, "request canceled"
	case errors.Is(err, backends.ErrUnavailable):
		code, msg = codes.Unavailable, "no signing backend is available; retry"
	case errors.Is(err, backends.ErrRefused):
		msg = "the signing backend refused the request; see the CA's logs"
	}
	return status.Error(code, msg)
}

package server

import (
	"google.golang.org/grpc/status"

	"github.com/meshca/meshca/ca"
)

// statusFor maps an issuance error to the gRPC status the caller sees, by the one classification table in
// package ca (ca.Classify): caller-side errors explain what to fix; server-side failures get a fixed message
// and the detail goes to the log only.
func statusFor(err error) error {
	c := ca.Classify(err)
	return status.Error(c.Code, c.CallerMessage(err))
}

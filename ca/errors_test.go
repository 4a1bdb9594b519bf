package ca_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr"
)

func TestClassify(t *testing.T) {
	wrap := func(errs ...error) error { return fmt.Errorf("outer: %w", errors.Join(errs...)) }
	tests := []struct {
		name        string
		err         error
		reason      string
		outcome     string
		code        codes.Code
		showsDetail bool
	}{
		{"no error is an issuance", nil, "ok", ca.OutcomeIssued, codes.OK, false},
		{"a refused token is unauthenticated", wrap(authn.ErrUnauthenticated), "unauthenticated",
			ca.OutcomeRejected, codes.Unauthenticated, true},
		{"an unreachable authenticator is retryable", wrap(authn.ErrUnavailable), "authn_unavailable",
			ca.OutcomeFailed, codes.Unavailable, false},
		{"a weak key is invalid", wrap(csr.ErrKeyPolicy), "key_policy", ca.OutcomeRejected, codes.InvalidArgument,
			true},
		{"a CSR asking for what meshca does not issue is denied", wrap(csr.ErrUnsupportedRequest),
			"unsupported_request", ca.OutcomeRejected, codes.PermissionDenied, true},
		{"a broken CSR is invalid", wrap(csr.ErrInvalidCSR), "invalid_csr", ca.OutcomeRejected,
			codes.InvalidArgument, true},
		{"a foreign identity is denied precisely", wrap(ca.ErrPermissionDenied, ca.ErrIdentityMismatch),
			"identity_mismatch", ca.OutcomeRejected, codes.PermissionDenied, true},
		{"an extra SAN is denied precisely", wrap(ca.ErrPermissionDenied, ca.ErrForbiddenSAN), "forbidden_san",
			ca.OutcomeRejected, codes.PermissionDenied, true},
		{"a CA request is denied precisely", wrap(ca.ErrPermissionDenied, ca.ErrCARequested), "ca_requested",
			ca.OutcomeRejected, codes.PermissionDenied, true},
		{"impersonation is denied precisely", wrap(ca.ErrPermissionDenied, authn.ErrImpersonationDenied),
			"impersonation_denied", ca.OutcomeRejected, codes.PermissionDenied, true},
		{"a quarantined identity is denied precisely", wrap(ca.ErrPermissionDenied, ca.ErrQuarantined),
			"quarantined", ca.OutcomeRejected, codes.PermissionDenied, true},
		{"a signer routed outside the rule's backends is denied precisely",
			wrap(ca.ErrPermissionDenied, ca.ErrBackendNotAllowed), "backend_not_allowed", ca.OutcomeRejected,
			codes.PermissionDenied, true},
		{"a denial without detail is still a denial", wrap(ca.ErrPermissionDenied), "permission_denied",
			ca.OutcomeRejected, codes.PermissionDenied, true},
		{"a malformed request is invalid", wrap(ca.ErrInvalidRequest), "invalid_request", ca.OutcomeRejected,
			codes.InvalidArgument, true},
		{"a deadline is retryable", wrap(context.DeadlineExceeded), "deadline_exceeded", ca.OutcomeFailed,
			codes.DeadlineExceeded, false},
		{"a cancellation is counted apart", wrap(context.Canceled), "canceled", ca.OutcomeFailed, codes.Canceled,
			false},
		{"an unavailable backend is retryable", wrap(backends.ErrUnavailable), "backend_unavailable",
			ca.OutcomeFailed, codes.Unavailable, false},
		{"a backend refusal hides the backend's words", wrap(backends.ErrRefused), "backend_refused",
			ca.OutcomeFailed, codes.Internal, false},
		{"a tampered chain is internal", wrap(backends.ErrBadChain), "bad_chain", ca.OutcomeFailed,
			codes.Internal, false},
		{"anything else is internal", errors.New("secret detail"), "internal", ca.OutcomeFailed, codes.Internal,
			false},
		{"the caller's fault wins over a deadline", wrap(authn.ErrUnauthenticated, context.DeadlineExceeded),
			"unauthenticated", ca.OutcomeRejected, codes.Unauthenticated, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ca.Classify(tt.err)
			if c.Reason != tt.reason || c.Outcome != tt.outcome || c.Code != tt.code {
				t.Fatalf("Classify = {%s %s %s}, want {%s %s %s}", c.Reason, c.Outcome, c.Code,
					tt.reason, tt.outcome, tt.code)
			}
			if ca.Reason(tt.err) != tt.reason {
				t.Errorf("Reason = %q, want %q", ca.Reason(tt.err), tt.reason)
			}
			msg := c.CallerMessage(tt.err)
			if tt.err != nil && msg == "" {
				t.Error("empty caller message")
			}
			if tt.err != nil && strings.Contains(msg, "outer") != tt.showsDetail {
				t.Errorf("CallerMessage = %q; want detail shown: %v", msg, tt.showsDetail)
			}
		})
	}
}

func TestClassesHaveUniqueReasons(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range ca.Classes() {
		if seen[c.Reason] {
			t.Errorf("reason %q appears twice", c.Reason)
		}
		seen[c.Reason] = true
		if c.Outcome != ca.OutcomeIssued && c.Outcome != ca.OutcomeRejected && c.Outcome != ca.OutcomeFailed {
			t.Errorf("reason %q has outcome %q", c.Reason, c.Outcome)
		}
		if (c.Outcome == ca.OutcomeFailed) != (c.Message != "") {
			t.Errorf("reason %q: a failure of meshca's own must have a fixed message, a rejection none", c.Reason)
		}
	}
}

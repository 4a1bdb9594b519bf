package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/meshca/meshca/ca/policy"
)

// ExplainPath is the policy explain call: what the running meshca would decide for a request.
const ExplainPath = "/v1/explain"

// ErrInvalidRequest means a request of this API is malformed or out of bounds (400).
var ErrInvalidRequest = errors.New("invalid admin request")

// Bounds of an ExplainRequest's fields: a longer value is refused before anything reads it.
const (
	maxNameLen   = 253         // namespace, service account, CertSigner: a Kubernetes object name at most
	maxShortLen  = 64          // key type, lifetime, time
	maxCSRLen    = 32 << 10    // a PEM CSR
	maxLabels    = 64          // namespace labels
	maxLabelKey  = 317         // prefix (253) + "/" + name (63)
	maxLabelVal  = 63          // a label value
	maxLabelsLen = maxBody / 2 // every label key and value together
)

// ExplainRequest asks what meshca would decide for a workload's request, as `meshca policy explain` does.
type ExplainRequest struct {
	// Namespace and ServiceAccount are the workload's (required).
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
	// CSR is the PEM CSR the workload would send (its key type and DNS names), instead of KeyType.
	CSR string `json:"csr,omitempty"`
	// KeyType is the key type without a CSR (csr.KeyTypes).
	KeyType string `json:"keyType,omitempty"`
	// CertSigner is the CertSigner metadata.
	CertSigner string `json:"certSigner,omitempty"`
	// TTL is the requested lifetime, a Go duration; empty asks for the default.
	TTL string `json:"ttl,omitempty"`
	// NamespaceLabels are the Namespace's labels; nil uses meshca's own view of them (in a cluster).
	NamespaceLabels map[string]string `json:"namespaceLabels,omitempty"`
	// At is an RFC 3339 time to decide at instead of now.
	At string `json:"at,omitempty"`
}

// Validate checks that the required fields are set and that every field is within its bound.
func (r *ExplainRequest) Validate() error {
	var errs []error
	for _, f := range []struct {
		name, v  string
		max      int
		required bool
	}{
		{"namespace", r.Namespace, maxNameLen, true}, {"serviceAccount", r.ServiceAccount, maxNameLen, true},
		{"certSigner", r.CertSigner, maxNameLen, false}, {"keyType", r.KeyType, maxShortLen, false},
		{"ttl", r.TTL, maxShortLen, false}, {"at", r.At, maxShortLen, false}, {"csr", r.CSR, maxCSRLen, false},
	} {
		switch {
		case f.required && f.v == "":
			errs = append(errs, fmt.Errorf("%w: %s is required", ErrInvalidRequest, f.name))
		case len(f.v) > f.max:
			errs = append(errs, fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidRequest, f.name, f.max))
		}
	}
	if r.CSR != "" && r.KeyType != "" {
		errs = append(errs, fmt.Errorf("%w: set csr or keyType, not both", ErrInvalidRequest))
	}
	if len(r.NamespaceLabels) > maxLabels {
		errs = append(errs, fmt.Errorf("%w: namespaceLabels has more than %d labels", ErrInvalidRequest, maxLabels))
	}
	total := 0
	for k, v := range r.NamespaceLabels {
		total += len(k) + len(v)
		if k == "" || len(k) > maxLabelKey || len(v) > maxLabelVal {
			errs = append(errs, fmt.Errorf("%w: namespaceLabels: label %q: the key must be 1 to %d bytes and the "+
				"value at most %d", ErrInvalidRequest, bounded(k), maxLabelKey, maxLabelVal))
			break
		}
	}
	if total > maxLabelsLen {
		errs = append(errs, fmt.Errorf("%w: namespaceLabels are longer than %d bytes", ErrInvalidRequest,
			maxLabelsLen))
	}
	return errors.Join(errs...)
}

// ExplainResponse is meshca's answer: the question as meshca understood it, and its decision.
type ExplainResponse struct {
	// Identity is the SPIFFE ID the request would be issued.
	Identity string `json:"identity"`
	// Request describes the rest of the request (CertSigner, key, DNS names, lifetime) as explain prints it.
	Request string `json:"request,omitempty"`
	// Decision is the decision and its trace; its Err is carried by Error.
	Decision policy.Decision `json:"decision"`
	// Error says why the request would be refused; empty when it would be served.
	Error string `json:"error,omitempty"`
	// Code and Reason are the gRPC code and the reason label a refusal would get.
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// explain serves ExplainPath.
func explain(svc Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req ExplainRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, bounded(fmt.Sprintf("the request is not an explain request: %v",
				err)))
			return
		}
		if err := req.Validate(); err != nil {
			writeError(w, http.StatusBadRequest, bounded(err.Error()))
			return
		}
		res, err := svc.Explain(r.Context(), req)
		switch {
		case errors.Is(err, ErrInvalidRequest):
			writeError(w, http.StatusBadRequest, bounded(err.Error()))
			return
		case err != nil:
			log.Error("admin: policy explain failed", "remote", r.RemoteAddr, "error", err)
			writeError(w, http.StatusServiceUnavailable, "policy explain failed; see meshca's log")
			return
		}
		log.Debug("admin: policy explain", "remote", r.RemoteAddr, "identity", bounded(res.Identity),
			"allowed", res.Decision.Allowed, "rule", res.Decision.Rule)
		writeJSON(w, res)
	}
}

// Explain asks meshca what it would decide for req under the rules in force.
func (c *Client) Explain(ctx context.Context, req ExplainRequest) (*ExplainResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var res ExplainResponse
	return &res, c.call(ctx, http.MethodPost, ExplainPath, body, &res)
}

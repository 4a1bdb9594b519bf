package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/meshca/meshca/crl"
)

// Paths of the API.
const (
	RevokePath = "/v1/revoke"
	CRLsPath   = "/v1/crls"
	PEMPath    = "/v1/crl.pem"
)

// maxBody bounds a request body.
const maxBody = 64 << 10

// RevokeRequest revokes one certificate (Serial, with CA when the inventory does not know it) or every
// certificate of an identity (Identity, optionally quarantined).
type RevokeRequest struct {
	// Serial is the certificate's serial number in hex (colons allowed).
	Serial string `json:"serial,omitempty"`
	// Certificate is the certificate in PEM, instead of Serial: it gives the serial and the CA, and lets a
	// backend that keeps no record of what it issued (Vault no_store roles) revoke it too.
	Certificate string `json:"certificate,omitempty"`
	// CA is the issuing CA's id (crl.CAID, "ski:<hex>"), needed only when the serial is not in the inventory.
	CA string `json:"ca,omitempty"`
	// Identity is a SPIFFE ID; every unexpired certificate meshca issued to it is revoked.
	Identity string `json:"identity,omitempty"`
	// Reason is an RFC 5280 reason, by name or number; default unspecified.
	Reason string `json:"reason,omitempty"`
	// Quarantine, with Identity, refuses the identity new certificates for this long (a Go duration, "24h").
	Quarantine string `json:"quarantine,omitempty"`
}

// Revoked is one revoked certificate.
type Revoked struct {
	Serial    string    `json:"serial"`
	CA        string    `json:"ca"`
	Identity  string    `json:"identity,omitempty"`
	Reason    string    `json:"reason"`
	RevokedAt time.Time `json:"revokedAt"`
	CRLNumber uint64    `json:"crlNumber"`
	// Existing is true when it was already revoked.
	Existing bool `json:"existing,omitempty"`
	// Backend names the backend that owns the CA and was told of the revocation (Vault, step-ca).
	Backend string `json:"backend,omitempty"`
}

// RevokeResponse is the outcome of a RevokeRequest.
type RevokeResponse struct {
	Revoked []Revoked `json:"revoked"`
	// Complete is false when the inventory dropped records: some certificates of the identity may be missing.
	Complete bool `json:"complete"`
	// QuarantineUntil is set when the identity is quarantined.
	QuarantineUntil *time.Time `json:"quarantineUntil,omitempty"`
	// Warnings are problems that did not stop the revocation (a backend that could not be told).
	Warnings []string `json:"warnings,omitempty"`
}

// CRLInfo describes the published CRL of one CA of the served chains.
type CRLInfo struct {
	CA      string `json:"ca"`
	Subject string `json:"subject"`
	// Origin is where the CRL comes from: meshca, backend <name>, file <path>, bundle <name>.
	Origin     string     `json:"origin,omitempty"`
	Number     string     `json:"number,omitempty"`
	ThisUpdate *time.Time `json:"thisUpdate,omitempty"`
	NextUpdate *time.Time `json:"nextUpdate,omitempty"`
	Entries    int        `json:"entries"`
	// Error says why the CA is not covered (no CRL, stale, not yet valid, revoked); empty when it is.
	Error string `json:"error,omitempty"`
}

// CRLsResponse is the state of the published CRLs.
type CRLsResponse struct {
	// Complete is true when every CA of the served chains has a current CRL.
	Complete bool      `json:"complete"`
	CRLs     []CRLInfo `json:"crls"`
	Checked  time.Time `json:"checked"`
}

// Service is what the handler serves; cmd/meshca implements it over crl.Registry and crl.Publisher.
type Service interface {
	// Revoke carries out req. Errors wrapping crl.ErrInvalidRequest, crl.ErrInvalidReason or
	// crl.ErrUnknownIssuer are the caller's mistake (400).
	Revoke(ctx context.Context, req RevokeRequest) (*RevokeResponse, error)
	// CRLs reports the published CRLs.
	CRLs(ctx context.Context) (*CRLsResponse, error)
	// PEM returns the ca-crl.pem being published.
	PEM(ctx context.Context) ([]byte, error)
	// Explain answers req under the policy rules in force, by the issuer's own decision code. An error
	// wrapping ErrInvalidRequest is the caller's mistake (400).
	Explain(ctx context.Context, req ExplainRequest) (*ExplainResponse, error)
}

// Handler serves the API for svc, logging every revocation to log.
func Handler(svc Service, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+RevokePath, func(w http.ResponseWriter, r *http.Request) {
		var req RevokeRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("the request is not a revocation request: %v", err))
			return
		}
		res, err := svc.Revoke(r.Context(), req)
		if err != nil {
			if isCallerError(err) {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			log.Error("admin: revocation failed", "remote", r.RemoteAddr, "caller", Caller(r.Context()), "error", err)
			writeError(w, http.StatusInternalServerError, "revocation failed; see meshca's log")
			return
		}
		log.Info("admin: revocation", "remote", r.RemoteAddr, "caller", Caller(r.Context()),
			"serial", bounded(req.Serial),
			"identity", bounded(req.Identity), "reason", bounded(req.Reason), "revoked", len(res.Revoked))
		writeJSON(w, res)
	})
	mux.HandleFunc("GET "+CRLsPath, func(w http.ResponseWriter, r *http.Request) {
		res, err := svc.CRLs(r.Context())
		if err != nil {
			log.Error("admin: CRL report failed", "error", err)
			writeError(w, http.StatusInternalServerError, "CRL report failed; see meshca's log")
			return
		}
		writeJSON(w, res)
	})
	mux.HandleFunc("GET "+PEMPath, func(w http.ResponseWriter, r *http.Request) {
		b, err := svc.PEM(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(b)
	})
	mux.HandleFunc("POST "+ExplainPath, explain(svc, log))
	return mux
}

func isCallerError(err error) bool {
	return errors.Is(err, crl.ErrInvalidRequest) || errors.Is(err, crl.ErrInvalidReason) ||
		errors.Is(err, crl.ErrUnknownIssuer)
}

// errorBody is the JSON of a failed call.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func bounded(s string) string {
	if len(s) > 256 {
		return s[:256] + "…"
	}
	return s
}

// drain reads and discards what is left of a response body, so its connection can be reused.
func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, maxBody)) }

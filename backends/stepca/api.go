package stepca

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/meshca/meshca/backends"
)

// Wire types of step-ca's API (github.com/smallstep/certificates/api), kept here so meshca does not import
// the whole authority.
type (
	signRequest struct {
		CSR       string `json:"csr"`
		OTT       string `json:"ott"`
		NotBefore string `json:"notBefore,omitempty"`
		NotAfter  string `json:"notAfter,omitempty"`
	}
	signResponse struct {
		Crt       string   `json:"crt"`
		CA        string   `json:"ca"`
		CertChain []string `json:"certChain"`
	}
	revokeRequest struct {
		Serial     string `json:"serial"`
		OTT        string `json:"ott"`
		ReasonCode int    `json:"reasonCode"`
		Reason     string `json:"reason,omitempty"`
		Passive    bool   `json:"passive"`
	}
	certsResponse struct {
		Certificates []string `json:"crts"`
	}
	apiError struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	}
)

// call sends one request to step-ca and decodes the JSON answer into out.
func (b *Backend) call(ctx context.Context, op, method, path string, in, out any, limit int64) error {
	return b.callWith(ctx, b.client, op, method, path, in, out, limit)
}

func (b *Backend) callWith(ctx context.Context, client *http.Client, op, method, path string, in, out any,
	limit int64) error {
	data, err := b.roundTrip(ctx, client, op, method, path, in, limit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("stepca: %s: step-ca's answer is not the expected JSON: %w", op, err)
	}
	return nil
}

// get fetches a raw body.
func (b *Backend) get(ctx context.Context, op, path string, limit int64) ([]byte, error) {
	return b.roundTrip(ctx, b.client, op, http.MethodGet, path, nil, limit)
}

// roundTrip runs one HTTP exchange under the backend's deadline and maps failures onto the backends
// sentinels: no answer, a 5xx or 429 is ErrUnavailable; 401 is ErrUnauthorized; any other 4xx is ErrRefused.
func (b *Backend) roundTrip(ctx context.Context, client *http.Client, op, method, path string, in any,
	limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("stepca: %s: encoding the request: %w", op, err)
		}
		body = bytes.NewReader(data)
	}
	u := b.base.JoinPath(path)
	hreq, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("stepca: %s: %w", op, err)
	}
	if in != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	hreq.Header.Set("User-Agent", "meshca")
	resp, err := client.Do(hreq)
	var trustErr *errServerTrust
	if errors.As(err, &trustErr) {
		// Not reachable in any useful sense, so the core may fail over; but this is configuration, not an outage.
		return nil, fmt.Errorf("stepca: %s: the server at %s is not the pinned step-ca (its TLS certificate does "+
			"not verify against rootFingerprint/rootsFile: %v): %w: %w",
			op, b.cfg.URL, trustErr.err, backends.ErrUnavailable, backends.ErrBadChain)
	}
	if err != nil {
		// url.Error holds the URL only (no token: tokens travel in the body).
		return nil, fmt.Errorf("stepca: %s: step-ca at %s did not answer (is it running and reachable?): %w: %w",
			op, b.cfg.URL, backends.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("stepca: %s: reading step-ca's answer: %w: %w", op, backends.ErrUnavailable, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("stepca: %s: step-ca's answer is larger than %d bytes", op, limit)
	}
	if resp.StatusCode/100 == 2 {
		return data, nil
	}
	msg := http.StatusText(resp.StatusCode)
	var ae apiError
	if json.Unmarshal(data, &ae) == nil && ae.Message != "" {
		msg = ae.Message
	}
	var kind error
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		kind = backends.ErrUnavailable
	case resp.StatusCode == http.StatusUnauthorized:
		kind = ErrUnauthorized
	default:
		kind = backends.ErrRefused
	}
	return nil, fmt.Errorf("stepca: %s: step-ca answered %d %q (request id %s): %w",
		op, resp.StatusCode, msg, resp.Header.Get("X-Request-Id"), kind)
}

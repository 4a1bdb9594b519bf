package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/meshca/meshca/internal/admintoken"
)

var (
	// ErrRefused means meshca refused the request as malformed (400): the message says what to fix.
	ErrRefused = errors.New("meshca refused the request")
	// ErrForbidden means the remote admin listener refused the client certificate's identity (403).
	ErrForbidden = errors.New("meshca refused this client")
	// ErrUnauthorized means the loopback admin listener refused the call for a missing or wrong admin token (401).
	ErrUnauthorized = errors.New("meshca refused the admin token")
)

// Client calls a running meshca's admin API.
type Client struct {
	// Addr is the admin listener, host:port (default 127.0.0.1:15016).
	Addr string
	// HTTP is the client; default one with a 30s timeout.
	HTTP *http.Client
	// TLS, when set, calls the remote mTLS listener (crl.admin.remote) over https with it (ClientTLS).
	TLS *tls.Config
	// Token is the admin token the loopback listener requires (adminTokenFile); sent when set.
	Token string
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if c.TLS != nil {
		hc.Transport = &http.Transport{TLSClientConfig: c.TLS, ForceAttemptHTTP2: true}
	}
	return hc
}

func (c *Client) scheme() string {
	if c.TLS != nil {
		return "https://"
	}
	return "http://"
}

// Revoke asks meshca to carry out req.
func (c *Client) Revoke(ctx context.Context, req RevokeRequest) (*RevokeResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var res RevokeResponse
	return &res, c.call(ctx, http.MethodPost, RevokePath, body, &res)
}

// CRLs returns the state of the published CRLs.
func (c *Client) CRLs(ctx context.Context) (*CRLsResponse, error) {
	var res CRLsResponse
	return &res, c.call(ctx, http.MethodGet, CRLsPath, nil, &res)
}

// PEM returns the ca-crl.pem meshca publishes.
func (c *Client) PEM(ctx context.Context) ([]byte, error) {
	var b []byte
	return b, c.call(ctx, http.MethodGet, PEMPath, nil, &b)
}

func (c *Client) call(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.scheme()+c.Addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		admintoken.Set(req, c.Token)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w (is meshca running with crl: on, and is this its admin address?)",
			c.Addr, err)
	}
	defer resp.Body.Close()
	defer drain(resp.Body)
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API at %s: reading the answer: %w", c.Addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		switch resp.StatusCode {
		case http.StatusBadRequest:
			return fmt.Errorf("%w: %s", ErrRefused, bounded(e.Error))
		case http.StatusUnauthorized:
			return fmt.Errorf("%w: admin API at %s: %s", ErrUnauthorized, c.Addr, bounded(e.Error))
		case http.StatusForbidden:
			return fmt.Errorf("%w: admin API at %s: %s", ErrForbidden, c.Addr, bounded(e.Error))
		}
		return fmt.Errorf("admin API at %s: %d: %s", c.Addr, resp.StatusCode, bounded(e.Error))
	}
	if b, ok := out.(*[]byte); ok {
		*b = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API at %s: the answer does not parse: %w", c.Addr, err)
	}
	return nil
}

package rotation

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/meshca/meshca/internal/admintoken"
)

// Client calls a running meshca's rotation admin API.
type Client struct {
	// Addr is the admin listener, host:port (default DefaultAdminAddr).
	Addr string
	// HTTP is the client; default one with a 30s timeout.
	HTTP *http.Client
	// Token is the admin token the listener requires (adminTokenFile); sent when set.
	Token string
}

// Status returns the rotation as the replica at Addr sees it.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	return &st, c.call(ctx, http.MethodGet, StatusPath, nil, &st)
}

// Change asks the replica at Addr, which must lead, for req. Refusals wrap the package's sentinel errors
// (ErrGateClosed, ErrWrongPhase, ErrNotLeader, ErrConflict, ErrInvalidChange, ...).
func (c *Client) Change(ctx context.Context, req ChangeRequest) (*Status, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var st Status
	return &st, c.call(ctx, http.MethodPost, ChangePath, body, &st)
}

func (c *Client) call(ctx context.Context, method, path string, body []byte, out any) error {
	addr := c.Addr
	if addr == "" {
		addr = DefaultAdminAddr
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		admintoken.Set(req, c.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("rotation admin API at %s: %w (is meshca running with a rotation: section, and is "+
			"this its rotation.adminAddr?)", addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("rotation admin API at %s: reading the answer: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		for _, k := range errKinds {
			if k.name == e.Kind {
				return fmt.Errorf("%w (meshca at %s): %s", k.err, addr, bounded(e.Error))
			}
		}
		return fmt.Errorf("rotation admin API at %s: %d: %s", addr, resp.StatusCode, bounded(e.Error))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("rotation admin API at %s: the answer does not parse: %w", addr, err)
	}
	return nil
}

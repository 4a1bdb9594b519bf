package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/meshca/meshca/backends"
)

// newClient builds a Vault client that takes nothing from the environment (VAULT_TOKEN, VAULT_NAMESPACE,
// VAULT_SKIP_VERIFY...) and never retries: the backend reports failures quickly and the core decides.
func newClient(cfg *Config) (*api.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLS.ServerName,
		InsecureSkipVerify: cfg.TLS.InsecureSkipVerify} //nolint:gosec // opt-in, logged as an error
	caPEM := []byte(cfg.TLS.CAPEM)
	if cfg.TLS.CAFile != "" {
		var err error
		if caPEM, err = cfg.ReadFile(cfg.TLS.CAFile); err != nil {
			return nil, fmt.Errorf("vault: reading tls.caFile: %w", err)
		}
	}
	if len(caPEM) > 0 {
		certs, err := backends.ParseCertificates(caPEM)
		if err != nil {
			return nil, fmt.Errorf("vault: TLS CA bundle: %w", err)
		}
		tlsCfg.RootCAs = x509.NewCertPool()
		for _, c := range certs {
			tlsCfg.RootCAs.AddCert(c)
		}
	}
	cfg.TLSPolicy.Apply(tlsCfg)
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: cfg.Timeout,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	hc := &http.Client{Transport: transport, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c, err := api.NewClient(&api.Config{Address: cfg.Address, HttpClient: hc, MaxRetries: 0, Timeout: cfg.Timeout})
	if err != nil {
		return nil, fmt.Errorf("vault: creating client for %s: %w", cfg.Address, err)
	}
	c.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}}) // drop VAULT_HEADERS
	c.ClearToken()
	c.ClearNamespace()
	if cfg.Namespace != "" {
		c.SetNamespace(cfg.Namespace)
	}
	return c, nil
}

// write sends one request with the backend's deadline. When Vault answers 403 and meshca can get a new token
// by itself (AppRole, Kubernetes, JWT login, or a rotated token file), it does so once and retries: the token
// may have been revoked, lost or rotated.
func (b *Backend) write(ctx context.Context, op, path string, data map[string]any) (*api.Secret, error) {
	for attempt := 0; ; attempt++ {
		used := b.client.Token()
		cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		sec, err := b.client.Logical().WriteWithContext(cctx, path, data)
		if err == nil {
			cancel()
			return sec, nil
		}
		err = b.classify(cctx, op, path, err)
		cancel()
		if attempt > 0 || !isDenied(err) || (b.cfg.Auth.Method == AuthToken && b.cfg.Auth.TokenFile == "") {
			return nil, err
		}
		if lerr := b.relogin(ctx, used); errors.Is(lerr, errTokenValid) {
			return nil, fmt.Errorf("%w (the token is valid: its policies do not allow %s)", err, path)
		} else if lerr != nil {
			// Only the first error's kind counts: the backend cannot sign for anyone (ErrUnavailable).
			return nil, fmt.Errorf("%w; logging in again failed: %v", err, lerr)
		}
	}
}

var errDenied = errors.New("permission denied")

func isDenied(err error) bool { return errors.Is(err, errDenied) }

// classify turns a client error into one wrapping backends.ErrUnavailable (no answer, 5xx, sealed, 429, 401/403:
// meshca's credentials no longer work, so this backend cannot sign for anyone) or backends.ErrRefused (any
// other 4xx: Vault declined this request).
func (b *Backend) classify(ctx context.Context, op, path string, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		switch {
		case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
			return fmt.Errorf("vault: %s (%s): %w: %w: %s: check meshca's Vault credentials and that its policy "+
				"allows this path",
				op, path, backends.ErrUnavailable, errDenied, msg)
		case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
			return fmt.Errorf("vault: %s (%s): %w: HTTP %d: %s", op, path, backends.ErrUnavailable, re.StatusCode, msg)
		case re.StatusCode >= 400:
			return fmt.Errorf("vault: %s (%s): %w: HTTP %d: %s", op, path, backends.ErrRefused, re.StatusCode, msg)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("vault: %s (%s): %w: no answer within %s: %w", op, path, backends.ErrUnavailable,
			b.cfg.Timeout, err)
	}
	var tlsErr *tls.CertificateVerificationError
	if errors.As(err, &tlsErr) {
		return fmt.Errorf("vault: %s (%s): %w: Vault's TLS certificate is not trusted: check tls.caFile or "+
			"tls.caPEM and tls.serverName: %w",
			op, path, backends.ErrUnavailable, err)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("vault: %s (%s): %w: %w", op, path, backends.ErrUnavailable, err)
	}
	return fmt.Errorf("vault: %s (%s): %w", op, path, err)
}

package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/meshca/meshca/internal/compliance"
)

// RemoteKeysConfig configures RemoteKeys.
type RemoteKeysConfig struct {
	// Issuer is the token issuer; unless JWKSURL is set, its OIDC discovery document
	// <issuer>/.well-known/openid-configuration names the JWKS URL.
	Issuer string
	// JWKSURL, when set, is fetched directly.
	JWKSURL string
	// DiscoveryURL, when set, is where the discovery document is fetched instead of at the issuer:
	// <DiscoveryURL>/.well-known/openid-configuration, e.g. the API server's URL when the issuer
	// (https://kubernetes.default.svc...) does not resolve from where meshca runs. The document must still
	// name Issuer, and its jwks_uri is fetched from DiscoveryURL's scheme and host (only its path is used).
	DiscoveryURL string
	// HTTPClient, when set, makes the fetches instead of a client built from CAFile and TokenFile, e.g.
	// rest.HTTPClientFor(kubeConfig) to reach the API server with its CA and credentials (see
	// NewAPIServerKeys).
	HTTPClient *http.Client
	// CAFile verifies the HTTPS server (e.g. the cluster CA); default the system roots.
	CAFile string
	// TokenFile, when set, is sent as a bearer token (re-read on every fetch).
	TokenFile string
	// Refresh is the periodic refresh interval. Default 5m.
	Refresh time.Duration
	// MinRefresh bounds refreshes triggered by unknown key IDs, and is the first backoff after a failed
	// refresh (doubling up to 32 × MinRefresh). Default 10s.
	MinRefresh time.Duration
	// MaxStale is how long after the last successful fetch the cached keys are still used while refreshes
	// fail; past it, authentication is unavailable until a fetch succeeds. Default 24h.
	MaxStale time.Duration
	// Timeout bounds one fetch. Default 5s.
	Timeout time.Duration
	// Metrics, when set, counts refreshes; share one between issuers.
	Metrics *KeysMetrics
	// Clock returns the current time; default time.Now.
	Clock  func() time.Time
	Logger *slog.Logger
	// TLSPolicy is the COMPLIANCE_POLICY applied to the fetches when HTTPClient is not set.
	TLSPolicy compliance.Policy
}

func (c *RemoteKeysConfig) setDefaults() {
	if c.Refresh == 0 {
		c.Refresh = 5 * time.Minute
	}
	if c.MinRefresh == 0 {
		c.MinRefresh = 10 * time.Second
	}
	if c.MaxStale == 0 {
		c.MaxStale = 24 * time.Hour
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// maxBackoff bounds the backoff between failed refreshes, in units of MinRefresh (10s → 5m20s).
const maxBackoff = 32

// RemoteKeys is a key set fetched over HTTPS from a JWKS endpoint, found through OIDC discovery, refreshed
// periodically and when a token names an unknown key. It serves its cached keys while a refresh is in flight
// or failing (stale-while-revalidate, for at most MaxStale), runs one refresh at a time, and backs off while
// refreshes fail: a hung endpoint never holds up the authentication of a token whose key is cached.
type RemoteKeys struct {
	cfg    RemoteKeysConfig
	client *http.Client

	mu        sync.Mutex
	set       *jose.JSONWebKeySet
	fetched   time.Time     // of the last successful fetch
	attempted time.Time     // start of the last fetch
	failures  int           // consecutive failed fetches
	lastErr   error         // of the last failed fetch
	inflight  chan struct{} // closed when the refresh in flight ends; nil when none is
	jwksURL   string        // found by discovery; used by the one refresh in flight only
}

// NewRemoteKeys returns a remote key set. It does not fetch until first used.
func NewRemoteKeys(cfg RemoteKeysConfig) (*RemoteKeys, error) {
	if cfg.Issuer == "" && cfg.JWKSURL == "" {
		return nil, errors.New("authn: remote keys need an issuer or a JWKS URL")
	}
	if cfg.DiscoveryURL != "" {
		u, err := url.Parse(cfg.DiscoveryURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("authn: discovery URL %q must be an https:// URL", cfg.DiscoveryURL)
		}
		if cfg.Issuer == "" {
			return nil, errors.New("authn: a discovery URL needs the issuer the document must name")
		}
	}
	if cfg.Refresh < 0 || cfg.MinRefresh < 0 || cfg.MaxStale < 0 || cfg.Timeout < 0 {
		return nil, errors.New("authn: remote keys: refresh intervals, staleness and timeout must not be negative")
	}
	cfg.setDefaults()
	if cfg.HTTPClient != nil {
		return &RemoteKeys{cfg: cfg, client: cfg.HTTPClient, jwksURL: cfg.JWKSURL}, nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("authn: reading CA file for JWKS: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("authn: %s holds no PEM certificate", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	cfg.TLSPolicy.Apply(tlsCfg)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &RemoteKeys{cfg: cfg, client: &http.Client{Transport: tr, Timeout: cfg.Timeout}, jwksURL: cfg.JWKSURL}, nil
}

// Keys implements KeySet. Cached keys younger than MaxStale answer at once; when older than Refresh, a
// refresh starts in the background. A kid not in the cached set waits for a refresh, started at most once
// per MinRefresh. Without usable keys (none yet, or older than MaxStale) the caller waits for a refresh, and
// gets ErrUnavailable if it fails.
func (r *RemoteKeys) Keys(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	now := r.cfg.Clock()
	r.mu.Lock()
	set, fetched := r.set, r.fetched
	switch {
	case set == nil || now.Sub(fetched) > r.cfg.MaxStale:
		done := r.startLocked(now)
		r.mu.Unlock()
		if err := r.await(ctx, done); err != nil {
			return nil, err
		}
		r.mu.Lock()
		set, fetched, lastErr := r.set, r.fetched, r.lastErr
		r.mu.Unlock()
		if set == nil || r.cfg.Clock().Sub(fetched) > r.cfg.MaxStale {
			return nil, fmt.Errorf("%w: no keys of token issuer %q fetched within %s: %w", ErrUnavailable,
				r.cfg.Issuer, r.cfg.MaxStale, lastErr)
		}
		return selectKeys(set, kid), nil
	case kid != "" && len(selectKeys(set, kid)) == 0:
		done := r.startLocked(now)
		r.mu.Unlock()
		if done != nil {
			if err := r.await(ctx, done); err != nil {
				return nil, err
			}
			r.mu.Lock()
			set = r.set
			r.mu.Unlock()
		}
		return selectKeys(set, kid), nil
	default:
		if now.Sub(fetched) > r.cfg.Refresh {
			r.startLocked(now) // in the background; the cached keys answer now
		}
		r.mu.Unlock()
		return selectKeys(set, kid), nil
	}
}

// startLocked starts a refresh unless one is in flight or the last attempt was too recent (MinRefresh, or
// the backoff after failures), and returns the channel closed when the refresh in flight ends (nil when
// none runs). r.mu must be held.
func (r *RemoteKeys) startLocked(now time.Time) <-chan struct{} {
	if r.inflight != nil {
		return r.inflight
	}
	wait := r.cfg.MinRefresh // after failures, doubling up to maxBackoff × MinRefresh
	for i := 1; i < r.failures && wait < maxBackoff*r.cfg.MinRefresh; i++ {
		wait *= 2
	}
	if !r.attempted.IsZero() && now.Sub(r.attempted) < wait {
		return nil
	}
	r.attempted = now
	done := make(chan struct{})
	r.inflight = done
	go r.refresh(done)
	return done
}

// await waits for a refresh to end, or for ctx.
func (r *RemoteKeys) await(ctx context.Context, done <-chan struct{}) error {
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the keys of token issuer %q: %w", ErrUnavailable, r.cfg.Issuer,
			ctx.Err())
	}
}

// refresh fetches the key set once, records the outcome and closes done. It outlives the request that
// started it, bounded by Timeout.
func (r *RemoteKeys) refresh(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	set, err := r.fetchSet(ctx)
	now := r.cfg.Clock()
	r.mu.Lock()
	defer func() {
		r.inflight = nil
		close(done)
		r.mu.Unlock()
	}()
	if err != nil {
		r.failures++
		r.lastErr = err
		r.cfg.Metrics.refreshed(r.cfg.Issuer, "error", time.Time{})
		log := r.cfg.Logger.Warn
		msg := "refreshing token issuer keys failed; serving the cached keys"
		if r.set == nil || now.Sub(r.fetched) > r.cfg.MaxStale {
			log, msg = r.cfg.Logger.Error, "refreshing token issuer keys failed; no usable keys, tokens refused"
		}
		log(msg, "issuer", r.cfg.Issuer, "failures", r.failures, "last_success", r.fetched, "error", err)
		return
	}
	r.set, r.fetched, r.failures, r.lastErr = set, now, 0, nil
	r.cfg.Metrics.refreshed(r.cfg.Issuer, "ok", now)
}

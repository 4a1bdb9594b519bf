package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/meshca/meshca/internal/compliance"
)

// StaticKeys is a fixed key set, for example read from a JWKS file.
type StaticKeys struct{ set jose.JSONWebKeySet }

// NewStaticKeys returns a key set holding keys.
func NewStaticKeys(keys ...jose.JSONWebKey) *StaticKeys {
	return &StaticKeys{set: jose.JSONWebKeySet{Keys: keys}}
}

// LoadJWKS reads a JSON Web Key Set (RFC 7517 §5) from a file, such as the output of
// `kubectl get --raw /openid/v1/jwks`.
func LoadJWKS(path string) (*StaticKeys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authn: reading JWKS: %w", err)
	}
	set, err := parseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("authn: %s: %w", path, err)
	}
	return &StaticKeys{set: *set}, nil
}

// Keys implements KeySet.
func (s *StaticKeys) Keys(_ context.Context, kid string) ([]jose.JSONWebKey, error) {
	return selectKeys(&s.set, kid), nil
}

func selectKeys(set *jose.JSONWebKeySet, kid string) []jose.JSONWebKey {
	if kid == "" {
		return set.Keys
	}
	return set.Key(kid)
}

func parseJWKS(b []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("malformed JWKS: %v", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, errors.New("JWKS holds a private or symmetric key; publish public keys only")
		}
	}
	return &set, nil
}

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
	// MinRefresh bounds refreshes triggered by unknown key IDs. Default 10s.
	MinRefresh time.Duration
	// Timeout bounds one fetch. Default 5s.
	Timeout time.Duration
	Logger  *slog.Logger
	// TLSPolicy is the COMPLIANCE_POLICY applied to the fetches when HTTPClient is not set.
	TLSPolicy compliance.Policy
}

// RemoteKeys is a key set fetched over HTTPS from a JWKS endpoint, found through OIDC discovery, refreshed
// periodically and when a token names an unknown key.
type RemoteKeys struct {
	cfg    RemoteKeysConfig
	client *http.Client

	fetch   sync.Mutex // one fetch at a time
	mu      sync.RWMutex
	set     *jose.JSONWebKeySet
	fetched time.Time
	jwksURL string
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
	if cfg.Refresh == 0 {
		cfg.Refresh = 5 * time.Minute
	}
	if cfg.MinRefresh == 0 {
		cfg.MinRefresh = 10 * time.Second
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
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

// Keys implements KeySet. A kid not in the cached set triggers a refresh, at most once per MinRefresh.
func (r *RemoteKeys) Keys(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	r.mu.RLock()
	set, fetched := r.set, r.fetched
	r.mu.RUnlock()
	now := time.Now()
	stale := set == nil || now.Sub(fetched) > r.cfg.Refresh
	unknown := set != nil && len(selectKeys(set, kid)) == 0 && now.Sub(fetched) > r.cfg.MinRefresh
	if stale || unknown {
		if err := r.refresh(ctx, fetched); err != nil {
			if set == nil {
				return nil, err
			}
			r.cfg.Logger.Warn("refreshing token issuer keys failed; using cached keys",
				"issuer", r.cfg.Issuer, "error", err)
		}
		r.mu.RLock()
		set = r.set
		r.mu.RUnlock()
	}
	return selectKeys(set, kid), nil
}

func (r *RemoteKeys) refresh(ctx context.Context, seen time.Time) error {
	r.fetch.Lock()
	defer r.fetch.Unlock()
	r.mu.RLock()
	done := r.fetched.After(seen) // another caller refreshed while we waited
	r.mu.RUnlock()
	if done {
		return nil
	}
	if r.jwksURL == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		base := r.cfg.Issuer
		if r.cfg.DiscoveryURL != "" {
			base = r.cfg.DiscoveryURL
		}
		b, err := r.get(ctx, strings.TrimSuffix(base, "/")+"/.well-known/openid-configuration")
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &doc); err != nil || doc.JWKSURI == "" {
			return fmt.Errorf("%w: OIDC discovery for %q has no jwks_uri", ErrUnavailable, r.cfg.Issuer)
		}
		if doc.Issuer != r.cfg.Issuer {
			return fmt.Errorf(
				"%w: OIDC discovery document names issuer %q, want %q",
				ErrUnavailable,
				doc.Issuer,
				r.cfg.Issuer,
			)
		}
		r.jwksURL = doc.JWKSURI
		if r.cfg.DiscoveryURL != "" {
			jwks, err := url.Parse(doc.JWKSURI)
			if err != nil {
				return fmt.Errorf("%w: OIDC discovery for %q: bad jwks_uri: %v", ErrUnavailable, r.cfg.Issuer, err)
			}
			u, _ := url.Parse(r.cfg.DiscoveryURL)
			u.Path, u.RawPath, u.RawQuery = jwks.Path, jwks.RawPath, jwks.RawQuery
			r.jwksURL = u.String()
		}
	}
	b, err := r.get(ctx, r.jwksURL)
	if err != nil {
		return err
	}
	set, err := parseJWKS(b)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, r.jwksURL, err)
	}
	r.mu.Lock()
	r.set, r.fetched = set, time.Now()
	r.mu.Unlock()
	return nil
}

func (r *RemoteKeys) get(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if r.cfg.TokenFile != "" {
		tok, err := os.ReadFile(r.cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("%w: reading token file: %v", ErrUnavailable, err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching %s: %v", ErrUnavailable, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: fetching %s: HTTP %d", ErrUnavailable, url, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// fetchSet fetches the key set, through OIDC discovery the first time when no JWKS URL is configured.
func (r *RemoteKeys) fetchSet(ctx context.Context) (*jose.JSONWebKeySet, error) {
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
			return nil, err
		}
		if err := json.Unmarshal(b, &doc); err != nil || doc.JWKSURI == "" {
			return nil, fmt.Errorf("%w: OIDC discovery for %q has no jwks_uri", ErrUnavailable, r.cfg.Issuer)
		}
		if doc.Issuer != r.cfg.Issuer {
			return nil, fmt.Errorf(
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
				return nil, fmt.Errorf("%w: OIDC discovery for %q: bad jwks_uri: %v", ErrUnavailable, r.cfg.Issuer, err)
			}
			u, _ := url.Parse(r.cfg.DiscoveryURL)
			u.Path, u.RawPath, u.RawQuery = jwks.Path, jwks.RawPath, jwks.RawQuery
			r.jwksURL = u.String()
		}
	}
	b, err := r.get(ctx, r.jwksURL)
	if err != nil {
		return nil, err
	}
	set, err := parseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, r.jwksURL, err)
	}
	return set, nil
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

package authn_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshca/meshca/ca/authn"
)

// TestRemoteKeysFindTheirJWKSByDiscovery: without a JWKS URL, the issuer's OIDC discovery document names it; a
// document that names another issuer, or no usable jwks_uri, makes the keys unavailable.
func TestRemoteKeysFindTheirJWKSByDiscovery(t *testing.T) {
	const apiIssuer = "https://kubernetes.default.svc.cluster.local"
	tests := []struct {
		name      string
		issuer    string // "" for the server's URL
		discovery bool   // fetch the document at the server (DiscoveryURL) instead of the issuer
		doc       string // {url} is the server's URL
		jwks      string
		wantErr   error
		wantPaths []string
	}{
		{"the document's jwks_uri is fetched", "", false, `{"issuer":"{url}","jwks_uri":"{url}/keys"}`, "", nil,
			[]string{"/.well-known/openid-configuration", "/keys"}},
		{"an issuer ending in a slash is found", "/", false, `{"issuer":"{url}/","jwks_uri":"{url}/keys"}`, "", nil,
			[]string{"/.well-known/openid-configuration", "/keys"}},
		{"a discovery URL's document is fetched there, and its jwks_uri's path too", apiIssuer, true,
			`{"issuer":"` + apiIssuer + `","jwks_uri":"` + apiIssuer + `/openid/v1/jwks"}`, "", nil,
			[]string{"/.well-known/openid-configuration", "/openid/v1/jwks"}},
		{"a document naming another issuer is refused", "", false,
			`{"issuer":"https://evil.example","jwks_uri":"{url}/keys"}`, "", authn.ErrUnavailable, nil},
		{"a document without jwks_uri is refused", "", false, `{"issuer":"{url}"}`, "", authn.ErrUnavailable, nil},
		{"a document that is not JSON is refused", "", false, `<html>`, "", authn.ErrUnavailable, nil},
		{"a missing document is refused", "", false, ``, "", authn.ErrUnavailable, nil},
		{"a discovery URL's document with an unparsable jwks_uri is refused", apiIssuer, true,
			`{"issuer":"` + apiIssuer + `","jwks_uri":"https://k/%zz"}`, "", authn.ErrUnavailable, nil},
		{"a JWKS that is not JSON is refused", "", false, `{"issuer":"{url}","jwks_uri":"{url}/keys"}`, "{",
			authn.ErrUnavailable, nil},
		{"a JWKS holding a private key is refused", "", false, `{"issuer":"{url}","jwks_uri":"{url}/keys"}`,
			`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, authn.ErrUnavailable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newKeyServer(t)
			s.mu.Lock()
			s.discovery, s.jwks = strings.ReplaceAll(tt.doc, "{url}", s.URL), tt.jwks
			s.mu.Unlock()
			cfg := authn.RemoteKeysConfig{Issuer: s.URL + tt.issuer, HTTPClient: s.Client(), Logger: discardLogger()}
			if tt.discovery {
				cfg.Issuer, cfg.DiscoveryURL = tt.issuer, s.URL
			}
			keys, err := authn.NewRemoteKeys(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := keys.Keys(context.Background(), "")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Keys: %v, want %v", err, tt.wantErr)
			}
			if err == nil && len(got) != 1 {
				t.Fatalf("Keys: %d keys, want the server's one", len(got))
			}
			for _, want := range tt.wantPaths {
				if p := <-s.requests; p != want {
					t.Fatalf("the server was asked for %s, want %s", p, want)
				}
			}
		})
	}
}

// TestRemoteKeysSendTheirBearerToken: the token file is sent, trimmed, as a bearer token, read at each fetch.
func TestRemoteKeysSendTheirBearerToken(t *testing.T) {
	s := newKeyServer(t)
	s.bearer = "secret"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		tokenFile string
		wantErr   error
	}{
		{"the token file's token is accepted", tokenFile, nil},
		{"without a token file the server refuses", "", authn.ErrUnavailable},
		{"a missing token file fails the fetch", filepath.Join(dir, "missing"), authn.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := s.remoteKeys(t, newFakeClock(), func(c *authn.RemoteKeysConfig) { c.TokenFile = tt.tokenFile })
			if _, err := keys.Keys(context.Background(), "k1"); !errors.Is(err, tt.wantErr) ||
				(tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Keys: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

package authn_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
)

func TestConfigValidate(t *testing.T) {
	off := false
	tests := []struct {
		name    string
		cfg     authn.Config
		mention []string // config keys the error must name; none: valid
	}{
		{"the default (client certificates only) is valid", authn.Config{}, nil},
		{"a token issuer with a JWKS file is valid",
			authn.Config{TokenIssuers: []authn.TokenIssuerConfig{{Issuer: "https://k", JWKSFile: "/jwks.json"}}}, nil},
		{"no token issuer and no client certificates is refused", authn.Config{ClientCert: &off},
			[]string{"token issuer"}},
		{"a token issuer without its issuer is refused",
			authn.Config{
				TokenIssuers: []authn.TokenIssuerConfig{{JWKSFile: "/jwks.json"}},
			}, []string{"authn.issuers[0]"}},
		{"a token issuer with both a JWKS file and a JWKS URL is refused",
			authn.Config{
				TokenIssuers: []authn.TokenIssuerConfig{{Issuer: "https://k", JWKSFile: "/j", JWKSURL: "https://k/j"}},
			},
			[]string{"authn.issuers[0]", "jwksFile"}},
		{"two issuers of which one names no cluster are refused",
			authn.Config{TokenIssuers: []authn.TokenIssuerConfig{{Issuer: "https://a", JWKSFile: "/a", ClusterID: "a"},
				{Issuer: "https://b", JWKSFile: "/b"}}}, []string{"authn.issuers[1].clusterID"}},
		{"two issuers each naming its cluster are valid",
			authn.Config{TokenIssuers: []authn.TokenIssuerConfig{{Issuer: "https://a", JWKSFile: "/a", ClusterID: "a"},
				{Issuer: "https://b", JWKSFile: "/b", ClusterID: "b"}}}, nil},
		{"a negative maximum token lifetime is refused", authn.Config{MaxTokenLifetime: -time.Hour},
			[]string{"authn.maxTokenLifetime"}},
		{"a leeway over 5m is refused", authn.Config{Leeway: 6 * time.Minute}, []string{"authn.leeway"}},
		{"every problem is reported at once",
			authn.Config{ClientCert: &off, Leeway: -time.Second, TokenIssuers: []authn.TokenIssuerConfig{{}}},
			[]string{"authn.issuers[0]", "authn.leeway"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (len(tt.mention) == 0) {
				t.Fatalf("Validate: %v, want an error naming %v", err, tt.mention)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not name %s", err, m)
				}
			}
		})
	}
}

// writeJWKS writes the public keys of m as a JWKS file, as `kubectl get --raw /openid/v1/jwks` would.
func writeJWKS(t *testing.T, m *devtoken.Minter) string {
	t.Helper()
	keys, err := m.Keys().Keys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// staticCaller authenticates every request that carries a token as one fixed caller.
type staticCaller struct{ authn.Caller }

func (s *staticCaller) Authenticate(_ context.Context, req *authn.Request) (*authn.Caller, error) {
	if req.Token == "" {
		return nil, authn.ErrNoCredential
	}
	c := s.Caller
	return &c, nil
}

func TestNewBuildsTheConfiguredChain(t *testing.T) {
	cluster, err := devtoken.Generate("https://cluster.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg := authn.Config{
		TokenIssuers: []authn.TokenIssuerConfig{{Issuer: cluster.Issuer, JWKSFile: writeJWKS(t, cluster)}},
	}
	roots := func(context.Context) ([]*x509.Certificate, error) { return nil, nil }
	ctx := context.Background()

	chain, err := authn.New(cfg, authn.Deps{Roots: roots, IssuingCAs: roots, MaxLifetime: time.Hour,
		TrustDomains: []string{"cluster.local"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cluster.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := chain.Authenticate(ctx, &authn.Request{Token: tok})
	if err != nil || c.Method != "jwt" || c.Namespace != "default" || c.ServiceAccount != "sleep" {
		t.Fatalf("a token of the configured issuer: %+v, %v; want default/sleep by jwt", c, err)
	}
	if cc, ok := chain[len(chain)-1].(*authn.ClientCert); !ok || cc.TrustDomains[0] != "cluster.local" {
		t.Fatalf("the last authenticator is %T, want the client certificates of cluster.local", chain[len(chain)-1])
	}

	// First comes before the token issuers and Then after them: a refusal is final, so order decides.
	first := &staticCaller{authn.Caller{Namespace: "first", ServiceAccount: "a", Method: "first"}}
	then := &staticCaller{authn.Caller{Namespace: "then", ServiceAccount: "b", Method: "then"}}
	chain, err = authn.New(cfg, authn.Deps{First: []authn.Authenticator{first}, Then: []authn.Authenticator{then},
		Combine: authn.CombineOtherIssuers, Roots: roots, IssuingCAs: roots, MaxLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := chain.Authenticate(ctx, &authn.Request{Token: tok}); err != nil || c.Method != "first" {
		t.Fatalf("with First set: %+v, %v; want First to answer", c, err)
	}
	if len(chain) != 4 || chain[2] != authn.Authenticator(then) {
		t.Fatalf("chain %v, want First, the token issuers, Then, client certificates", chain)
	}
}

func TestNewRefusesWhatCannotWork(t *testing.T) {
	off := false
	tests := []struct {
		name string
		cfg  authn.Config
		deps authn.Deps
	}{
		{"client certificates without the CA's roots", authn.Config{}, authn.Deps{}},
		{"client certificates without the issuing CAs", authn.Config{},
			authn.Deps{Roots: func(context.Context) ([]*x509.Certificate, error) { return nil, nil },
				MaxLifetime: time.Hour}},
		{"neither a token issuer nor client certificates", authn.Config{ClientCert: &off}, authn.Deps{}},
		{"a JWKS file that does not exist",
			authn.Config{TokenIssuers: []authn.TokenIssuerConfig{{Issuer: "https://k", JWKSFile: "/nonexistent/jwks"}}},
			authn.Deps{Roots: func(context.Context) ([]*x509.Certificate, error) { return nil, nil },
				IssuingCAs:  func(context.Context) ([]*x509.Certificate, error) { return nil, nil },
				MaxLifetime: time.Hour}},
		{"an invalid config", authn.Config{Leeway: time.Hour}, authn.Deps{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if chain, err := authn.New(tt.cfg, tt.deps); err == nil {
				t.Fatalf("New returned %v, want an error", chain)
			} else if errors.Is(err, authn.ErrUnauthenticated) {
				t.Fatalf("a configuration error is not a refused credential: %v", err)
			}
		})
	}
}

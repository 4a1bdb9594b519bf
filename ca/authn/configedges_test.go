package authn_test

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
)

// authFunc is an Authenticator made of a function.
type authFunc func(ctx context.Context, req *authn.Request) (*authn.Caller, error)

func (f authFunc) Authenticate(ctx context.Context, req *authn.Request) (*authn.Caller, error) {
	return f(ctx, req)
}

// renewalDeps are the Deps of client-certificate renewal against ca.
func renewalDeps(ca *renewalCA) authn.Deps {
	return authn.Deps{Roots: ca.cc.Roots, IssuingCAs: ca.cc.IssuingCAs, MaxLifetime: 24 * time.Hour,
		TrustDomains: []string{"cluster.local"}}
}

func TestConfigWithDefaults(t *testing.T) {
	cfg := authn.Config{Leeway: time.Minute, TokenIssuers: []authn.TokenIssuerConfig{{Issuer: "https://a"},
		{Issuer: "https://b", Audiences: []string{"b"}}}}
	got := cfg.WithDefaults()
	if got.ClientCert == nil || !*got.ClientCert || got.Leeway != time.Minute {
		t.Errorf("WithDefaults kept clientCert %v and leeway %s, want true and the configured 1m", got.ClientCert,
			got.Leeway)
	}
	if a, b := got.TokenIssuers[0].Audiences, got.TokenIssuers[1].Audiences; !slices.Equal(a,
		[]string{authn.DefaultAudience}) || !slices.Equal(b, []string{"b"}) {
		t.Errorf("audiences %v and %v, want the default for the first and the configured b for the second", a, b)
	}
	if cfg.TokenIssuers[0].Audiences != nil {
		t.Errorf("WithDefaults changed its receiver's issuers: %v", cfg.TokenIssuers[0].Audiences)
	}
	empty := authn.Config{}.WithDefaults()
	if empty.Leeway != authn.DefaultLeeway || empty.TokenIssuers != nil {
		t.Errorf("defaults of an empty config: leeway %s, issuers %v; want %s and none", empty.Leeway,
			empty.TokenIssuers, authn.DefaultLeeway)
	}
}

// TestNewEdges: client certificates alone make a chain; client certificates need a positive maximum lifetime.
func TestNewEdges(t *testing.T) {
	ca := newRenewalCA(t, time.Now())
	chain, err := authn.New(authn.Config{}, renewalDeps(ca))
	if err != nil || len(chain) != 1 {
		t.Fatalf("New without token issuers: %v, %v; want a chain of client certificates alone", chain, err)
	}
	if _, ok := chain[0].(*authn.ClientCert); !ok {
		t.Fatalf("New without token issuers: %T, want *authn.ClientCert", chain[0])
	}
	deps := renewalDeps(ca)
	deps.MaxLifetime = 0
	if chain, err := authn.New(authn.Config{}, deps); err == nil {
		t.Fatalf("New with client certificates and no maximum lifetime: %v, want an error", chain)
	}
}

// TestUnknownIssuersGoToThenOnly: without Then, a token of an unconfigured issuer is refused, and the refusal is
// final even beside a valid client certificate; with Then, it goes to Then.
func TestUnknownIssuersGoToThenOnly(t *testing.T) {
	known, err := devtoken.Generate("https://known.example")
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := devtoken.Generate("https://unknown.example")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := unknown.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := newRenewalCA(t, now)
	cfg := authn.Config{TokenIssuers: []authn.TokenIssuerConfig{{Issuer: known.Issuer,
		JWKSFile: writeJWKS(t, known)}}}
	ctx := context.Background()

	chain, err := authn.New(cfg, renewalDeps(ca))
	if err != nil {
		t.Fatal(err)
	}
	c, err := chain.Authenticate(ctx, &authn.Request{Token: tok, PeerCertificates: ca.leaf(t, now, leafOpts{}, nil)})
	if !errors.Is(err, authn.ErrUnauthenticated) {
		t.Fatalf("an unknown issuer's token beside a valid client certificate: %+v, %v; want ErrUnauthenticated",
			c, err)
	}

	deps := renewalDeps(ca)
	deps.Then, deps.Combine = []authn.Authenticator{&staticCaller{authn.Caller{Namespace: "default",
		ServiceAccount: "sleep", Method: "then"}}}, authn.CombineOtherIssuers
	if chain, err = authn.New(cfg, deps); err != nil {
		t.Fatal(err)
	}
	if c, err := chain.Authenticate(ctx, &authn.Request{Token: tok}); err != nil || c.Method != "then" {
		t.Fatalf("an unknown issuer's token with Then: %+v, %v; want Then to answer", c, err)
	}
}

// TestNewPassesItsLoggerToRemoteKeySets: a remote key set's failed fetch is logged on Deps.Logger.
func TestNewPassesItsLoggerToRemoteKeySets(t *testing.T) {
	rec := &levelRecorder{}
	off := false
	chain, err := authn.New(authn.Config{ClientCert: &off, TokenIssuers: []authn.TokenIssuerConfig{{
		Issuer: edgeIssuer, JWKSURL: "https://127.0.0.1:1/jwks"}}}, authn.Deps{Logger: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	tok := signClaims(t, edgeKey(t), edgeClaims(), "")
	if _, err := chain.Authenticate(context.Background(), &authn.Request{Token: tok}); !errors.Is(err,
		authn.ErrUnavailable) {
		t.Fatalf("with the JWKS endpoint unreachable: %v, want ErrUnavailable", err)
	}
	if r := rec.wait(t, 1); r.Level != slog.LevelError {
		t.Fatalf("logged %s %q, want the failed fetch as an error", r.Level, r.Message)
	}
}

// TestConfirmedTokensNeedTheReviewsAgreement: with CombineConfirm, a token of a configured issuer is verified
// locally and then must be confirmed by Then with the same identity, pod and cluster; other tokens go to Then
// alone, and a request without a token is not Then's.
func TestConfirmedTokensNeedTheReviewsAgreement(t *testing.T) {
	known, err := devtoken.Generate("https://known.example")
	if err != nil {
		t.Fatal(err)
	}
	other, err := devtoken.Generate("https://other.example")
	if err != nil {
		t.Fatal(err)
	}
	mint := func(m *devtoken.Minter, podUID string) string {
		tok, err := m.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep", PodName: "sleep-0",
			PodUID: podUID})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	off := false
	cfg := authn.Config{ClientCert: &off, TokenIssuers: []authn.TokenIssuerConfig{{Issuer: known.Issuer,
		JWKSFile: writeJWKS(t, known)}}}
	agree := authn.Caller{Namespace: "default", ServiceAccount: "sleep", PodUID: "uid-1",
		ClusterID: authn.DefaultClusterID, Method: "review"}
	edit := func(f func(*authn.Caller)) authn.Caller { c := agree; f(&c); return c }
	tests := []struct {
		name       string
		review     authn.Caller
		reviewErr  error
		token      string
		wantErr    error
		wantMethod string
	}{
		{"an agreeing review confirms", agree, nil, mint(known, "uid-1"), nil, "jwt+review"},
		{"a token without a pod UID is confirmed by any pod", agree, nil, mint(known, ""), nil, "jwt+review"},
		{"another issuer's token is the review's alone", agree, nil, mint(other, "uid-9"), nil, "review"},
		{"a refusing review refuses", agree, authn.ErrUnauthenticated, mint(known, "uid-1"),
			authn.ErrUnauthenticated, ""},
		{"a review of another namespace refuses", edit(func(c *authn.Caller) { c.Namespace = "prod" }), nil,
			mint(known, "uid-1"), authn.ErrUnauthenticated, ""},
		{"a review of another service account refuses", edit(func(c *authn.Caller) { c.ServiceAccount = "x" }),
			nil, mint(known, "uid-1"), authn.ErrUnauthenticated, ""},
		{"a review of another pod refuses", edit(func(c *authn.Caller) { c.PodUID = "uid-2" }), nil,
			mint(known, "uid-1"), authn.ErrUnauthenticated, ""},
		{"a review in another cluster refuses", edit(func(c *authn.Caller) { c.ClusterID = "b" }), nil,
			mint(known, "uid-1"), authn.ErrUnauthenticated, ""},
		{"no token is not the review's business", agree, nil, "", authn.ErrUnauthenticated, ""},
		{"a bad token of the issuer is refused before any review", agree, nil, mint(known, "uid-1")[:60],
			authn.ErrUnauthenticated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			review := authFunc(func(context.Context, *authn.Request) (*authn.Caller, error) {
				if tt.reviewErr != nil {
					return nil, tt.reviewErr
				}
				c := tt.review
				return &c, nil
			})
			chain, err := authn.New(cfg, authn.Deps{Then: []authn.Authenticator{review},
				Combine: authn.CombineConfirm, Roots: func(context.Context) ([]*x509.Certificate, error) {
					return nil, nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			c, err := chain.Authenticate(context.Background(), &authn.Request{Token: tt.token})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Authenticate = %+v, %v; want %v", c, err, tt.wantErr)
			}
			if err == nil && c.Method != tt.wantMethod {
				t.Fatalf("method %q, want %q", c.Method, tt.wantMethod)
			}
		})
	}
}

package authn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
)

func newDevJWT(t testing.TB) (*devtoken.Minter, *authn.JWT) {
	t.Helper()
	d, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: d.Issuer, Keys: d.Keys()}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d, j
}

func TestJWT(t *testing.T) {
	d, j := newDevJWT(t)
	mint := func(c devtoken.Claims) string {
		if c.Namespace == "" {
			c.Namespace, c.ServiceAccount = "default", "sleep"
		}
		tok, err := d.Mint(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name    string
		token   string
		wantErr error
	}{
		{"a valid bound token authenticates", mint(devtoken.Claims{PodName: "sleep-0", NodeName: "node-a"}), nil},
		{"a token within the clock-skew leeway authenticates",
			mint(devtoken.Claims{IssuedAt: time.Now().Add(-time.Hour - 10*time.Second), TTL: time.Hour}), nil},
		{"no token is not this authenticator's business", "", authn.ErrNoCredential},
		{"an expired token is refused",
			mint(devtoken.Claims{IssuedAt: time.Now().Add(-3 * time.Hour), TTL: time.Hour}), authn.ErrUnauthenticated},
		{"a token issued in the future is refused",
			mint(devtoken.Claims{IssuedAt: time.Now().Add(time.Hour)}), authn.ErrUnauthenticated},
		{"a wrong audience is refused",
			mint(devtoken.Claims{Audiences: []string{"https://kubernetes.default.svc"}}), authn.ErrUnauthenticated},
		{"a token that is not a service account is refused",
			mint(devtoken.Claims{Namespace: "x:y", ServiceAccount: "z"}), authn.ErrUnauthenticated},
		{"a token living longer than the maximum token lifetime is refused",
			mint(devtoken.Claims{TTL: authn.DefaultMaxTokenLifetime + time.Hour}), authn.ErrUnauthenticated},
		{"a token living exactly the maximum token lifetime authenticates",
			mint(devtoken.Claims{TTL: authn.DefaultMaxTokenLifetime}), nil},
		{"a truncated token is refused", mint(devtoken.Claims{})[:60], authn.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := j.Authenticate(context.Background(), &authn.Request{Token: tt.token})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Authenticate: %v, want %v", err, tt.wantErr)
			}
			if err == nil && (c.Namespace != "default" || c.ServiceAccount != "sleep" || c.Method != "jwt") {
				t.Fatalf("caller %+v", c)
			}
		})
	}
	bound := mint(devtoken.Claims{PodName: "sleep-0", NodeName: "node-a"})
	c, err := j.Authenticate(context.Background(), &authn.Request{Token: bound})
	if err != nil || c.PodName != "sleep-0" || c.NodeName != "node-a" {
		t.Fatalf("bound claims not carried: %+v %v", c, err)
	}
}

// TestJWTClusterOfTheIssuer: the caller's cluster is the verifying issuer's, and a clusterid header naming
// another cluster is refused instead of believed.
func TestJWTClusterOfTheIssuer(t *testing.T) {
	d, j := newDevJWT(t)
	tok, err := d.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	if err != nil {
		t.Fatal(err)
	}
	for _, header := range []string{"", authn.DefaultClusterID} {
		c, err := j.Authenticate(context.Background(), &authn.Request{Token: tok, ClusterID: header})
		if err != nil || c.ClusterID != authn.DefaultClusterID {
			t.Fatalf("header %q: caller %+v, %v; want the local cluster %s", header, c, err, authn.DefaultClusterID)
		}
	}
	_, err = j.Authenticate(context.Background(), &authn.Request{Token: tok, ClusterID: "cluster-b"})
	if !errors.Is(err, authn.ErrUnauthenticated) || strings.Contains(err.Error(), authn.DefaultClusterID) {
		t.Fatalf("header cluster-b: %v, want ErrUnauthenticated not naming the issuer's cluster", err)
	}
}

// FuzzParseToken: no input panics, and every failure is ErrUnauthenticated.
func FuzzParseToken(f *testing.F) {
	d, _ := newDevJWT(f)
	tok, _ := d.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	f.Add(tok)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := authn.ParseToken(s); err != nil && !errors.Is(err, authn.ErrUnauthenticated) {
			t.Fatalf("error %v is not ErrUnauthenticated", err)
		}
	})
}

// FuzzAuthenticate: mutations of a valid token never authenticate as anyone but its subject, and never panic.
func FuzzAuthenticate(f *testing.F) {
	d, j := newDevJWT(f)
	tok, _ := d.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	f.Add(tok)
	f.Add(tok[:len(tok)-4] + "AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := j.Authenticate(context.Background(), &authn.Request{Token: s})
		if err != nil {
			if !errors.Is(err, authn.ErrUnauthenticated) && !errors.Is(err, authn.ErrNoCredential) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if c.Namespace != "default" || c.ServiceAccount != "sleep" {
			t.Fatalf("a mutated token authenticated as %s/%s", c.Namespace, c.ServiceAccount)
		}
	})
}

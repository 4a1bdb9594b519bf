package devtoken_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"path/filepath"
	"testing"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
)

// authenticate verifies tok as meshca does for a token issuer trusted with keys.
func authenticate(t *testing.T, issuer string, keys authn.KeySet, tok string) (*authn.Caller, error) {
	t.Helper()
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: issuer, Keys: keys}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j.Authenticate(context.Background(), &authn.Request{Token: tok})
}

func TestMintedTokensAuthenticate(t *testing.T) {
	m, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	if m.Issuer != devtoken.DefaultIssuer {
		t.Fatalf("issuer %q, want %q", m.Issuer, devtoken.DefaultIssuer)
	}
	tok, err := m.Mint(
		devtoken.Claims{Namespace: "default", ServiceAccount: "sleep", PodName: "sleep-0", NodeName: "n1"},
	)
	if err != nil {
		t.Fatal(err)
	}
	c, err := authenticate(t, m.Issuer, m.Keys(), tok)
	if err != nil {
		t.Fatalf("a minted token with the default audience: %v", err)
	}
	if c.Namespace != "default" || c.ServiceAccount != "sleep" || c.PodName != "sleep-0" || c.NodeName != "n1" {
		t.Fatalf("caller %+v, want default/sleep on pod sleep-0, node n1", c)
	}

	// The key written by WriteKey mints tokens that the original key set verifies, and no other.
	path := filepath.Join(t.TempDir(), devtoken.KeyFile)
	if err := m.WriteKey(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := devtoken.Load("", path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err = loaded.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authenticate(t, m.Issuer, m.Keys(), tok); err != nil {
		t.Fatalf("a token of the reloaded key: %v", err)
	}
	other, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authenticate(t, m.Issuer, other.Keys(), tok); !errors.Is(err, authn.ErrUnauthenticated) {
		t.Fatalf("a token checked against another key: %v, want ErrUnauthenticated", err)
	}
}

func TestNewRefusesKeysOtherThanP256(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := devtoken.New("", k); err == nil {
		t.Fatal("New accepted an RSA key")
	}
	if _, err := devtoken.Load("", filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("Load accepted a missing key file")
	}
}

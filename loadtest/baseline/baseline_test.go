package baseline

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
	"github.com/meshca/meshca/loadtest"
)

// devDir makes a meshca dev directory (cacerts and token key) with the library, as `meshca init` does.
func devDir(t *testing.T) (string, *devtoken.Minter, *file.Generated) {
	t.Helper()
	dir := t.TempDir()
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WriteDir(filepath.Join(dir, "cacerts")); err != nil {
		t.Fatal(err)
	}
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.WriteKey(filepath.Join(dir, devtoken.KeyFile)); err != nil {
		t.Fatal(err)
	}
	return dir, dev, g
}

func tokenKey(t *testing.T, dev *devtoken.Minter) *ecdsa.PublicKey {
	t.Helper()
	keys, err := dev.Keys().Keys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return keys[0].Key.(*ecdsa.PublicKey)
}

func TestFloorsIssueWhatTheTokenProves(t *testing.T) {
	dir, dev, _ := devDir(t)
	signer, err := LoadCA(filepath.Join(dir, "cacerts"))
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/bench/sa/a")
	tok, err := dev.Mint(devtoken.Claims{Namespace: "bench", ServiceAccount: "a"})
	if err != nil {
		t.Fatal(err)
	}
	der, err := signer.EssentialFloor(tok, tokenKey(t, dev), "cluster.local", csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.CheckSignatureFrom(signer.Cert); err != nil || leaf.URIs[0].String() !=
		"spiffe://cluster.local/ns/bench/sa/a" {
		t.Errorf("leaf for %v, signature: %v", leaf.URIs, err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tampered := tok[:len(tok)-4] + strings.Repeat("A", 4)
	tests := []struct {
		name  string
		token string
		key   *ecdsa.PublicKey
	}{
		{"a token signed by another key is refused", tok, &other.PublicKey},
		{"a token with a changed signature is refused", tampered, tokenKey(t, dev)},
		{"a token that is not a compact JWS is refused", "a.b", tokenKey(t, dev)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := signer.EssentialFloor(tt.token, tt.key, "cluster.local", csrPEM); err == nil {
				t.Error("issued")
			}
		})
	}
	expired, err := dev.Mint(devtoken.Claims{Namespace: "bench", ServiceAccount: "a", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyToken(expired, tokenKey(t, dev), time.Now().Add(2*time.Minute)); err == nil {
		t.Error("an expired token verified")
	}
}

// TestIstioServerServesTheLoadTester: istiod's CA server answers meshca-loadtest with valid chains for the
// token's identity, and refuses a token it cannot verify.
func TestIstioServerServesTheLoadTester(t *testing.T) {
	dir, dev, gen := devDir(t)
	cacerts := filepath.Join(dir, "cacerts")
	signer, err := LoadCA(cacerts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewIstioCA(cacerts)
	if err != nil {
		t.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewIstioServer(c, &JWTAuthenticator{JWT: j, TrustDomain: "cluster.local"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	roots := x509.NewCertPool()
	roots.AddCert(gen.Root)
	stranger, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		tokens *devtoken.Minter
		wantOK bool
	}{
		{"tokens of the trusted issuer get valid chains", dev, true},
		{"tokens of another issuer are refused", stranger, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := loadtest.Run(context.Background(), loadtest.Config{Addr: l.Addr().String(), Roots: roots,
				Tokens: tt.tokens, Namespaces: 2, ServiceAccounts: 3, Rate: 20, Duration: time.Second,
				FreshTokens: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.OK == 20 && res.Invalid == 0; got != tt.wantOK {
				t.Errorf("ok %d invalid %d errors %v %v", res.OK, res.Invalid, res.Errors, res.Samples)
			}
			if !tt.wantOK && res.Errors["Unauthenticated"] != 20 {
				t.Errorf("errors %v, want 20 Unauthenticated", res.Errors)
			}
		})
	}
}

func TestMeasureCountsEveryOperationAndError(t *testing.T) {
	m, err := Measure("x", 100, func(i int) error {
		if i%10 == 0 {
			return url.EscapeError("x")
		}
		return nil
	})
	if err != nil || m.N != 100 || m.Errors != 10 || m.FirstErr == nil || m.CPU < 0 {
		t.Errorf("%+v, %v", m, err)
	}
}

func FuzzVerifyToken(f *testing.F) {
	dev, err := devtoken.Generate("")
	if err != nil {
		f.Fatal(err)
	}
	tok, err := dev.Mint(devtoken.Claims{Namespace: "a", ServiceAccount: "b"})
	if err != nil {
		f.Fatal(err)
	}
	keys, err := dev.Keys().Keys(context.Background(), "")
	if err != nil {
		f.Fatal(err)
	}
	pub := keys[0].Key.(*ecdsa.PublicKey)
	f.Add(tok)
	f.Add("e30.e30.AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		if c, err := VerifyToken(s, pub, time.Now()); err == nil && s != tok {
			t.Errorf("a token other than the one minted verified: %q (%+v)", s, c)
		}
	})
}

package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/meshca/meshca/ca/authn"
)

const edgeIssuer = "https://issuer.edges.test"

// edgeKey is an ES256 key signing tokens of edgeIssuer.
func edgeKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// edgeClaims are a valid service-account token's claims for default/sleep of edgeIssuer, living 1h from now.
func edgeClaims() map[string]any {
	now := time.Now()
	return map[string]any{"iss": edgeIssuer, "sub": "system:serviceaccount:default:sleep",
		"aud": []string{authn.DefaultAudience}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// signClaims signs claims with key (ES256), adding the header parameter "pad" when pad is not empty.
func signClaims(t testing.TB, key *ecdsa.PrivateKey, claims map[string]any, pad string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if pad != "" {
		opts = opts.WithHeader("pad", pad)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenOfSize returns a valid token of edgeIssuer exactly size bytes long, padded by a claim and a header
// parameter (base64url cannot reach every length by one of them alone; ES256 signatures have a fixed length).
func tokenOfSize(t testing.TB, key *ecdsa.PrivateKey, size int) string {
	t.Helper()
	for h := 1; h <= 4; h++ {
		c := edgeClaims()
		c["pad"] = ""
		base := len(signClaims(t, key, c, strings.Repeat("h", h)))
		for n := max(0, (size-base)*3/4-4); n <= (size-base)*3/4+4; n++ {
			c["pad"] = strings.Repeat("p", n)
			if tok := signClaims(t, key, c, strings.Repeat("h", h)); len(tok) == size {
				return tok
			}
		}
	}
	t.Fatalf("no token of exactly %d bytes", size)
	return ""
}

func edgeJWT(t testing.TB, opts authn.JWTOptions, keys ...jose.JSONWebKey) *authn.JWT {
	t.Helper()
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: edgeIssuer, Keys: authn.NewStaticKeys(keys...)}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestTokenSizeLimitIsInclusive: a token of exactly MaxTokenSize bytes is parsed and authenticates; one byte more
// is refused before any parsing.
func TestTokenSizeLimitIsInclusive(t *testing.T) {
	key := edgeKey(t)
	j := edgeJWT(t, authn.JWTOptions{}, jose.JSONWebKey{Key: &key.PublicKey})
	tests := []struct {
		name    string
		size    int
		wantErr error
	}{
		{"a token of exactly the maximum size is accepted", authn.MaxTokenSize, nil},
		{"a token one byte over the maximum size is refused", authn.MaxTokenSize + 1, authn.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tokenOfSize(t, key, tt.size)
			c, err := authn.ParseToken(tok)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("ParseToken: %v, want %v", err, tt.wantErr)
			}
			if err == nil && (c.Issuer != edgeIssuer || c.Subject != "system:serviceaccount:default:sleep") {
				t.Fatalf("ParseToken claims %+v, want the token's", c)
			}
			caller, err := j.Authenticate(context.Background(), &authn.Request{Token: tok})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Authenticate: %v, want %v", err, tt.wantErr)
			}
			if err == nil && caller.ServiceAccount != "sleep" {
				t.Fatalf("caller %+v", caller)
			}
		})
	}
}

// TestOnlySigningKeysOfTheTokensAlgorithmVerify: a JWKS key marked for encryption, or for another algorithm
// than the token's, is not used to verify its signature, even when it is the very key that signed it.
func TestOnlySigningKeysOfTheTokensAlgorithmVerify(t *testing.T) {
	key := edgeKey(t)
	tok := signClaims(t, key, edgeClaims(), "")
	pub := &key.PublicKey
	tests := []struct {
		name    string
		key     jose.JSONWebKey
		wantErr error
	}{
		{"a key without use or alg verifies", jose.JSONWebKey{Key: pub}, nil},
		{"a signing key of the token's algorithm verifies", jose.JSONWebKey{Key: pub, Use: "sig", Algorithm: "ES256"},
			nil},
		{"an encryption key is not used", jose.JSONWebKey{Key: pub, Use: "enc"}, authn.ErrUnauthenticated},
		{"a key for another algorithm is not used", jose.JSONWebKey{Key: pub, Algorithm: "ES384"},
			authn.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := edgeJWT(t, authn.JWTOptions{}, tt.key).Authenticate(context.Background(),
				&authn.Request{Token: tok})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Authenticate: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestTokenLifetimeCountsFromIssuance: a token's lifetime runs from iat when it has one (however little of it
// is left), else from now.
func TestTokenLifetimeCountsFromIssuance(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	exp := jwt.NewNumericDate(now.Add(2 * time.Hour))
	if got := authn.TokenLifetime(jwt.NewNumericDate(now.Add(-23*time.Hour)), exp, now); got != 25*time.Hour {
		t.Errorf("issued 23h ago, expiring in 2h: lifetime %s, want 25h", got)
	}
	if got := authn.TokenLifetime(nil, exp, now); got != 2*time.Hour {
		t.Errorf("without iat, expiring in 2h: lifetime %s, want 2h", got)
	}

	key := edgeKey(t)
	j := edgeJWT(t, authn.JWTOptions{}, jose.JSONWebKey{Key: &key.PublicKey})
	c := edgeClaims()
	c["iat"], c["exp"] = time.Now().Add(-23*time.Hour).Unix(), time.Now().Add(2*time.Hour).Unix()
	_, err := j.Authenticate(context.Background(), &authn.Request{Token: signClaims(t, key, c, "")})
	if !errors.Is(err, authn.ErrUnauthenticated) {
		t.Fatalf("a 25h token with 2h left: %v, want ErrUnauthenticated (longer than the 24h maximum)", err)
	}
}

// TestLeewayBoundsAreInclusive: NewJWT takes a leeway of up to exactly 5m and refuses more.
func TestLeewayBoundsAreInclusive(t *testing.T) {
	key := jose.JSONWebKey{Key: &edgeKey(t).PublicKey}
	tests := []struct {
		name   string
		leeway time.Duration
		ok     bool
	}{
		{"a leeway of exactly 5m is accepted", 5 * time.Minute, true},
		{"a leeway just over 5m is refused", 5*time.Minute + time.Nanosecond, false},
		{"a negative leeway is refused", -time.Nanosecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: edgeIssuer, Keys: authn.NewStaticKeys(key)}},
				authn.JWTOptions{Leeway: tt.leeway})
			if (err == nil) != tt.ok {
				t.Fatalf("NewJWT with leeway %s: %v", tt.leeway, err)
			}
			if err := (&authn.Config{Leeway: tt.leeway}).Validate(); (err == nil) != tt.ok {
				t.Fatalf("Config.Validate with leeway %s: %v", tt.leeway, err)
			}
		})
	}
}

package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
)

// TestClaimsAreTrustedOnlyWithTheirSignature: the claims are decoded once, before the signature is checked
// (the issuer they name chooses the keys), and still nothing of a payload counts unless the signature over
// those very bytes verifies; Kubernetes' private claims, decoded in the same pass, must agree with the
// subject and carry the pod and node.
func TestClaimsAreTrustedOnlyWithTheirSignature(t *testing.T) {
	const iss = "https://issuer.decode.test"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: string(jose.ES256), Use: "sig"}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: iss, Keys: authn.NewStaticKeys(jwk)}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(ns, sa string, k8s map[string]any) string {
		now := time.Now()
		std := jwt.Claims{Issuer: iss, Subject: "system:serviceaccount:" + ns + ":" + sa,
			Audience: jwt.Audience{authn.DefaultAudience}, IssuedAt: jwt.NewNumericDate(now),
			Expiry: jwt.NewNumericDate(now.Add(time.Hour))}
		b := jwt.Signed(signer).Claims(std)
		if k8s != nil {
			b = b.Claims(map[string]any{"kubernetes.io": k8s})
		}
		tok, err := b.Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bound := func(ns, sa string) map[string]any {
		return map[string]any{"namespace": ns, "serviceaccount": map[string]any{"name": sa, "uid": "u1"},
			"pod": map[string]any{"name": "sleep-0", "uid": "p1"}, "node": map[string]any{"name": "node-a"}}
	}
	good := sign("default", "sleep", bound("default", "sleep"))
	evil := sign("kube-system", "admin", bound("kube-system", "admin"))
	g, e := strings.Split(good, "."), strings.Split(evil, ".")
	tests := []struct {
		name    string
		token   string
		wantErr error
		wantPod string
	}{
		{"a bound token authenticates with its pod and node", good, nil, "sleep-0"},
		{"a token without kubernetes.io claims authenticates from its subject",
			sign("default", "sleep", nil), nil, ""},
		{"another token's payload under this token's signature is refused",
			g[0] + "." + e[1] + "." + g[2], authn.ErrUnauthenticated, ""},
		{"a signed token whose kubernetes.io namespace disagrees with its subject is refused",
			sign("default", "sleep", bound("kube-system", "sleep")), authn.ErrUnauthenticated, ""},
		{"a signed token whose kubernetes.io service account disagrees with its subject is refused",
			sign("default", "sleep", bound("default", "admin")), authn.ErrUnauthenticated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := j.Authenticate(context.Background(), &authn.Request{Token: tt.token})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Authenticate = %+v, %v; want %v", c, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if c.Namespace != "default" || c.ServiceAccount != "sleep" || c.Issuer != iss || c.PodName != tt.wantPod {
				t.Fatalf("caller %+v", c)
			}
			if tt.wantPod != "" && (c.PodUID != "p1" || c.NodeName != "node-a") {
				t.Fatalf("bound claims not carried: %+v", c)
			}
		})
	}
}

// BenchmarkJWTAuthenticate is one ES256 service-account token verified and decoded: the authentication
// share of every issuance (issue #14). Tokens are minted beforehand and reused (nothing caches them).
func BenchmarkJWTAuthenticate(b *testing.B) {
	d, j := newDevJWT(b)
	toks := make([]string, 256)
	for n := range toks {
		var err error
		if toks[n], err = d.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep",
			PodName: "sleep-0", NodeName: "node-a"}); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	cpu, n := processCPU(b), 0
	for b.Loop() {
		if _, err := j.Authenticate(ctx, &authn.Request{Token: toks[n%len(toks)]}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(n)/1e3, "cpu-µs/op")
}

// processCPU is the CPU time (user + system) this process has used: on a shared machine, CPU per operation
// is the stable figure where wall time per operation is not.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

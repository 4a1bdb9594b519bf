package ca_test

import (
	"context"
	"crypto"
	"crypto/mldsa"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// BenchmarkIssueFileByKey is BenchmarkIssueFile for each key type a CSR may carry: ECDSA P-256 and RSA-2048
// go to the classical ECDSA P-256 CA, ML-DSA keys to the ML-DSA-65 CA (file backend mldsaDir). It measures
// CSR self-signature checks, signing and chain verification of each kind; keys are made before the timer.
func BenchmarkIssueFileByKey(b *testing.B) {
	be := catest.MLDSAFileBackend(b, nil)
	dev, err := devtoken.Generate("")
	if err != nil {
		b.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		b.Fatal(err)
	}
	i, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: be}}, Authenticator: j,
		Policy: ca.Policy{TrustDomain: "cluster.local", MLDSA: true}, Limits: ca.Limits{PerCallerRate: -1},
		Logger:     catest.DiscardLogger(),
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	mldsaKey := func(p mldsa.Parameters) func(testing.TB) crypto.Signer {
		return func(tb testing.TB) crypto.Signer {
			k, err := mldsa.GenerateKey(p)
			if err != nil {
				tb.Fatal(err)
			}
			return k
		}
	}
	for _, k := range []struct {
		name string
		key  func(testing.TB) crypto.Signer
	}{
		{"ECDSA-P256", catest.ECKey},
		{"RSA-2048", func(tb testing.TB) crypto.Signer { return catest.RSAKey(tb, 2048) }},
		{"ML-DSA-44", mldsaKey(mldsa.MLDSA44())},
		{"ML-DSA-65", mldsaKey(mldsa.MLDSA65())},
		{"ML-DSA-87", mldsaKey(mldsa.MLDSA87())},
	} {
		b.Run(k.name, func(b *testing.B) {
			tok, err := dev.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
			if err != nil {
				b.Fatal(err)
			}
			reqs := make([]*ca.Request, 16)
			for n := range reqs {
				c, _ := catest.CSR(b, catest.CSROptions{Key: k.key(b),
					URIs: []string{"spiffe://cluster.local/ns/default/sa/sleep"}})
				reqs[n] = &ca.Request{Credentials: authn.Request{Token: tok}, CSR: c}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				n := 0
				for pb.Next() {
					if _, err := i.Issue(context.Background(), reqs[n%len(reqs)]); err != nil {
						b.Error(err)
						return
					}
					n++
				}
			})
		})
	}
}

package ca_test

import (
	"context"
	"crypto"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// BenchmarkIssueFileComposite is BenchmarkIssueFileByKey for composite CSRs (ML-DSA-65 + ECDSA-P256 keys, to
// the composite CA of compositeDir) beside ECDSA P-256 CSRs on the same backend (to its classical CA). A
// composite issuance verifies the CSR's composite self-signature, signs with the composite CA and verifies the
// whole chain with composite.VerifyChain (no chain cache on that path).
func BenchmarkIssueFileComposite(b *testing.B) {
	be, _ := catest.CompositeFileBackend(b, nil)
	dev, err := devtoken.Generate("")
	if err != nil {
		b.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		b.Fatal(err)
	}
	i, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: be}}, Authenticator: j,
		Policy:     ca.Policy{TrustDomain: "cluster.local", ExperimentalComposite: true},
		Limits:     ca.Limits{PerCallerRate: -1},
		Logger:     catest.DiscardLogger(),
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range []struct {
		name string
		key  func(testing.TB) crypto.Signer
	}{
		{"ECDSA-P256", catest.ECKey},
		{"MLDSA65-ECDSA-P256", func(tb testing.TB) crypto.Signer { return catest.CompositeKey(tb) }},
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

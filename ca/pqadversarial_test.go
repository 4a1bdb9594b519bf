package ca_test

import (
	"context"
	"crypto"
	"crypto/mldsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/internal/devtoken"
)

// faultyPQ is faulty for a backend with an ML-DSA CA: it keeps PostQuantumRoots visible to the core.
type faultyPQ struct {
	*faulty
	roots backends.PostQuantumRooter
}

func (f *faultyPQ) PostQuantumRoots(ctx context.Context) ([]*x509.Certificate, error) {
	return f.roots.PostQuantumRoots(ctx)
}

// keyFamily is one kind of workload key with an issuer whose policy accepts it and a backend that counts
// signing calls.
type keyFamily struct {
	name   string
	newKey func(testing.TB) crypto.Signer
	// sigFlips are offsets from the end of the CSR's DER that land in its signature, by signature component.
	sigFlips map[string]int
	issuer   *ca.Issuer
	dev      *devtoken.Minter
	calls    func() int
}

func keyFamilies(t *testing.T) []*keyFamily {
	t.Helper()
	issuer := func(k *keyFamily, b backends.Backend, p ca.Policy) {
		var err error
		if k.dev, err = devtoken.Generate(""); err != nil {
			t.Fatal(err)
		}
		keys := []authn.TokenIssuer{{Issuer: k.dev.Issuer, Keys: k.dev.Keys()}}
		j, err := authn.NewJWT(keys, authn.JWTOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.TrustDomain = "cluster.local"
		if k.issuer, err = ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: b}},
			Authenticator: j, Policy: p, Logger: catest.DiscardLogger(),
			Registerer: prometheus.NewRegistry()}); err != nil {
			t.Fatal(err)
		}
	}
	dir, _ := catest.FileCA(t)
	ec := &faulty{Backend: catest.FileBackend(t, dir, nil), t: t}
	pqb := catest.MLDSAFileBackend(t, nil)
	pq := &faultyPQ{faulty: &faulty{Backend: pqb, t: t}, roots: pqb}
	hyb, _ := catest.CompositeFileBackend(t, nil)
	hy := &faultyComposite{faulty: &faulty{Backend: hyb, t: t}, roots: hyb}
	fams := []*keyFamily{
		{name: "ECDSA-P256", newKey: catest.ECKey, sigFlips: map[string]int{"ECDSA": 1},
			calls: func() int { return ec.calls }},
		{name: "ML-DSA-65", newKey: func(tb testing.TB) crypto.Signer {
			k, err := mldsa.GenerateKey(mldsa.MLDSA65())
			if err != nil {
				tb.Fatal(err)
			}
			return k
		}, sigFlips: map[string]int{"ML-DSA": 1}, calls: func() int { return pq.calls }},
		// A composite signature is the ML-DSA-65 signature (3309 bytes) then the ECDSA one (about 72).
		{name: "composite ML-DSA-65+ECDSA-P256",
			newKey:   func(tb testing.TB) crypto.Signer { return catest.CompositeKey(tb) },
			sigFlips: map[string]int{"ML-DSA": 200, "ECDSA": 20}, calls: func() int { return hy.calls }},
	}
	issuer(fams[0], ec, ca.Policy{})
	issuer(fams[1], pq, ca.Policy{MLDSA: true})
	issuer(fams[2], hy, ca.Policy{ExperimentalComposite: true})
	return fams
}

// flip returns the PEM CSR in with the byte off bytes before the end of its DER flipped.
func flip(in []byte, off int) []byte {
	b, _ := pem.Decode(in)
	der := append([]byte(nil), b.Bytes...)
	der[len(der)-off] ^= 0x01
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// The adversarial rules hold for ML-DSA and composite CSRs exactly as for ECDSA ones, through the whole issuer:
// each refusal wraps the same error for every key family, and no backend is asked to sign. The caller is
// default/sleep; each family's own good CSR is issued, so the refusals are the rules', not a broken setup.
func TestAdversarialRulesHoldForEveryKeyFamily(t *testing.T) {
	const sleep = "spiffe://cluster.local/ns/default/sa/sleep"
	private, _ := asn1.Marshal(asn1.NullRawValue)
	cases := []struct {
		name string
		opts catest.CSROptions
		want error
	}{
		{"another service account's identity is refused",
			catest.CSROptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/admin"}}, ca.ErrIdentityMismatch},
		{"another namespace's identity is refused",
			catest.CSROptions{URIs: []string{"spiffe://cluster.local/ns/kube-system/sa/sleep"}},
			ca.ErrIdentityMismatch},
		{"another trust domain's identity is refused",
			catest.CSROptions{URIs: []string{"spiffe://evil.example/ns/default/sa/sleep"}}, ca.ErrIdentityMismatch},
		{"a second URI beside the caller's own is refused",
			catest.CSROptions{URIs: []string{sleep, "spiffe://cluster.local/ns/default/sa/admin"}},
			ca.ErrForbiddenSAN},
		{"an extra DNS name is refused", catest.CSROptions{URIs: []string{sleep}, DNS: []string{"evil.example"}},
			ca.ErrForbiddenSAN},
		{"an IP address SAN is refused", catest.CSROptions{URIs: []string{sleep}, IPs: []string{"10.0.0.1"}},
			ca.ErrForbiddenSAN},
		{"an email SAN is refused", catest.CSROptions{URIs: []string{sleep}, Emails: []string{"a@evil.example"}},
			ca.ErrForbiddenSAN},
		{"a CA certificate request is refused", catest.CSROptions{URIs: []string{sleep}, IsCA: true},
			ca.ErrCARequested},
		{"an unknown extension is unsupported", catest.CSROptions{URIs: []string{sleep}, Extensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: private}}}, csr.ErrUnsupportedRequest},
	}
	for _, fam := range keyFamilies(t) {
		t.Run(fam.name, func(t *testing.T) {
			tok, err := fam.dev.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
			if err != nil {
				t.Fatal(err)
			}
			issue := func(in []byte) (*ca.Result, error) {
				req := &ca.Request{Credentials: authn.Request{Token: tok}, CSR: in}
				return fam.issuer.Issue(context.Background(), req)
			}
			refused := func(t *testing.T, in []byte, want error) {
				t.Helper()
				calls := fam.calls()
				if res, err := issue(in); !errors.Is(err, want) || res != nil {
					t.Fatalf("Issue issued %v, err %v; want %v and nothing issued", res != nil, err, want)
				}
				if fam.calls() != calls {
					t.Fatal("the backend was asked to sign")
				}
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					tc.opts.Key = fam.newKey(t)
					in, _ := catest.CSR(t, tc.opts)
					refused(t, in, tc.want)
				})
			}
			good, _ := catest.CSR(t, catest.CSROptions{Key: fam.newKey(t), URIs: []string{sleep}})
			for part, off := range fam.sigFlips {
				t.Run("a bad "+part+" self-signature is invalid", func(t *testing.T) {
					refused(t, flip(good, off), csr.ErrInvalidCSR)
				})
			}
			if _, err := issue(good); err != nil {
				t.Fatalf("the caller's own %s CSR: %v", fam.name, err)
			}
		})
	}
}

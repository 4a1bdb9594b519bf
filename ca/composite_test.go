package ca_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/csr/composite"
	"github.com/meshca/meshca/internal/devtoken"
)

// faultyComposite is faulty for a backend with a composite CA: it keeps CompositeRoots visible to the core.
type faultyComposite struct {
	*faulty
	roots backends.CompositeRooter
}

func (f *faultyComposite) CompositeRoots(ctx context.Context) ([]*x509.Certificate, error) {
	return f.roots.CompositeRoots(ctx)
}

// compositeIssuer returns an issuer over b in trust domain cluster.local with composite CSRs enabled (or not).
func compositeIssuer(t *testing.T, b backends.Backend, enabled bool) (*ca.Issuer, *devtoken.Minter) {
	t.Helper()
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: b}}, Authenticator: j,
		Policy: ca.Policy{TrustDomain: "cluster.local", ExperimentalComposite: enabled},
		Logger: catest.DiscardLogger(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return i, dev
}

// compositeRequest is a composite CSR for default/sleep from default/sleep.
func compositeRequest(t *testing.T, dev *devtoken.Minter) (*ca.Request, *composite.PrivateKey) {
	t.Helper()
	r := request(t, dev)
	key := catest.CompositeKey(t)
	r.CSR, _ = catest.CSR(t, catest.CSROptions{Key: key, URIs: []string{"spiffe://cluster.local/ns/default/sa/sleep"}})
	return r, key
}

// forge signs tmpl for pub with the composite CA g's intermediate and returns the chain the backend would.
func forge(t *testing.T, g *file.Generated, tmpl *x509.Certificate, pub crypto.PublicKey) []*x509.Certificate {
	t.Helper()
	der, err := composite.CreateCertificate(rand.Reader, tmpl, g.Intermediate, pub,
		g.IntermediateKey.(*composite.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{leaf, g.Intermediate, g.Root}
}

// A composite CSR gets a chain from the composite CA that composite.VerifyChain accepts to CompositeRoots, and
// the response's trust bundle is the composite roots alone: not the classical roots, and the composite root
// never appears in Roots, TrustBundle or PostQuantumRoots.
func TestCompositeCSRGetsACompositeChain(t *testing.T) {
	b, g := catest.CompositeFileBackend(t, nil)
	i, dev := compositeIssuer(t, b, true)
	req, key := compositeRequest(t, dev)
	res, err := i.Issue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := i.CompositeRoots(context.Background())
	if err != nil || len(roots) != 1 || !roots[0].Equal(g.Root) {
		t.Fatalf("CompositeRoots = %v, %v", roots, err)
	}
	if err := composite.VerifyChain(res.Chain, roots, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !backends.SameKey(backends.CertificateKey(res.Chain[0]), key.Public()) {
		t.Error("the leaf does not certify the CSR's key")
	}
	bundle, err := backends.ParseCertificates(res.TrustBundle)
	if err != nil || len(bundle) != 1 || !bundle[0].Equal(g.Root) {
		t.Errorf("trust bundle %v (%v), want the composite root alone", bundle, err)
	}
	classical, _ := i.Roots(context.Background())
	pq, _ := i.PostQuantumRoots(context.Background())
	for _, r := range append(classical, pq...) {
		if r.Equal(g.Root) {
			t.Error("the composite root is in Roots or PostQuantumRoots")
		}
	}
}

// TestTamperedCompositeAnswersAreRefused: the core's composite path checks what it checks for every leaf.
// Each leaf is signed by the composite CA itself (or by another one where the signature is the point) and
// breaks one check; each is refused with ErrBadChain and nothing is issued.
func TestTamperedCompositeAnswersAreRefused(t *testing.T) {
	b, g := catest.CompositeFileBackend(t, nil)
	otherBackend, other := catest.CompositeFileBackend(t, nil)
	honest := func(r *backends.SignResponse) *x509.Certificate {
		l := r.Leaf()
		return &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: l.NotBefore,
			NotAfter: l.NotAfter, URIs: l.URIs, KeyUsage: l.KeyUsage, ExtKeyUsage: l.ExtKeyUsage,
			BasicConstraintsValid: true}
	}
	tests := []struct {
		name   string
		tamper func(*backends.SignResponse, *testing.T)
	}{
		{"the SAN of another identity", func(r *backends.SignResponse, t *testing.T) {
			tmpl := honest(r)
			tmpl.URIs = []*url.URL{{Scheme: "spiffe", Host: "cluster.local", Path: "/ns/kube-system/sa/admin"}}
			r.Chain = forge(t, g, tmpl, backends.CertificateKey(r.Leaf()))
		}},
		{"keyCertSign beside digitalSignature", func(r *backends.SignResponse, t *testing.T) {
			tmpl := honest(r)
			tmpl.KeyUsage |= x509.KeyUsageCertSign
			r.Chain = forge(t, g, tmpl, backends.CertificateKey(r.Leaf()))
		}},
		{"extKeyUsage codeSigning", func(r *backends.SignResponse, t *testing.T) {
			tmpl := honest(r)
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
			r.Chain = forge(t, g, tmpl, backends.CertificateKey(r.Leaf()))
		}},
		{"a CA certificate", func(r *backends.SignResponse, t *testing.T) {
			tmpl := honest(r)
			tmpl.IsCA = true
			r.Chain = forge(t, g, tmpl, backends.CertificateKey(r.Leaf()))
		}},
		{"a leaf that outlives its CA", func(r *backends.SignResponse, t *testing.T) {
			tmpl := honest(r)
			tmpl.NotAfter = g.Intermediate.NotAfter.Add(time.Hour)
			r.Chain = forge(t, g, tmpl, backends.CertificateKey(r.Leaf()))
		}},
		{"a leaf that expired", func(r *backends.SignResponse, t *testing.T) {
			tmpl := honest(r)
			tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
			r.Chain = forge(t, g, tmpl, backends.CertificateKey(r.Leaf()))
		}},
		{"a leaf for another key", func(r *backends.SignResponse, t *testing.T) {
			r.Chain = forge(t, g, honest(r), catest.CompositeKey(t).Public())
		}},
		{"a leaf from another composite CA with the right CA chain", func(r *backends.SignResponse, t *testing.T) {
			r.Chain[0] = forge(t, other, honest(r), backends.CertificateKey(r.Leaf()))[0]
		}},
		{"a chain to another composite root", func(r *backends.SignResponse, t *testing.T) {
			o, err := otherBackend.Sign(context.Background(), &backends.SignRequest{
				PublicKey: backends.CertificateKey(r.Leaf()), URIs: r.Leaf().URIs, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			r.Chain = o.Chain
		}},
		{"a chain without its intermediate", func(r *backends.SignResponse, t *testing.T) {
			r.Chain = []*x509.Certificate{r.Chain[0], r.Chain[2]}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &faultyComposite{&faulty{Backend: b, t: t, tamper: tt.tamper}, b}
			i, dev := compositeIssuer(t, f, true)
			req, _ := compositeRequest(t, dev)
			res, err := i.Issue(context.Background(), req)
			if !errors.Is(err, backends.ErrBadChain) || res != nil {
				t.Fatalf("Issue: %v, %v; want ErrBadChain and nothing issued", res, err)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// A composite CSR is refused with ErrKeyPolicy (InvalidArgument, not retried) before any backend is asked,
// both when composite certificates are off and when no backend has a composite CA.
func TestCompositeCSRWithoutACompositeCAIsRefused(t *testing.T) {
	dir, _ := catest.FileCA(t)
	hybrid, _ := catest.CompositeFileBackend(t, nil)
	tests := []struct {
		name    string
		backend backends.Backend
		enabled bool
	}{
		{"composite certificates are off", hybrid, false},
		{"no backend has a composite CA", catest.FileBackend(t, dir, nil), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &faulty{Backend: tt.backend, t: t}
			var b backends.Backend = f
			if cr, ok := tt.backend.(backends.CompositeRooter); ok {
				b = &faultyComposite{f, cr}
			}
			i, dev := compositeIssuer(t, b, tt.enabled)
			req, _ := compositeRequest(t, dev)
			_, err := i.Issue(context.Background(), req)
			if !errors.Is(err, csr.ErrKeyPolicy) || ca.Reason(err) != "key_policy" {
				t.Fatalf("Issue: %v (reason %s), want ErrKeyPolicy", err, ca.Reason(err))
			}
			if f.calls != 0 {
				t.Errorf("the backend was asked %d times", f.calls)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// brokenComposite is a backend whose composite roots cannot be read (a backend that is down).
type brokenComposite struct{ backends.Backend }

func (brokenComposite) CompositeRoots(context.Context) ([]*x509.Certificate, error) {
	return nil, backends.ErrUnavailable
}

// CompositeRoots is the union of what the backends can say: one backend down does not hide another's
// composite roots, every backend down is an error, and backends without a composite CA are no error.
func TestCompositeRootsSurviveABackendDown(t *testing.T) {
	good, g := catest.CompositeFileBackend(t, nil)
	dir, _ := catest.FileCA(t)
	classical := catest.FileBackend(t, dir, nil)
	down := brokenComposite{classical}
	tests := []struct {
		name      string
		backends  []backends.Backend
		wantRoots int
		wantErr   bool
	}{
		{"one backend down, the other's composite root", []backends.Backend{down, good}, 1, false},
		{"every backend down is an error", []backends.Backend{down, down}, 0, true},
		{"no backend with a composite CA: none, and no error", []backends.Backend{classical}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var nbs []ca.NamedBackend
			for n, b := range tt.backends {
				nbs = append(nbs, ca.NamedBackend{Name: fmt.Sprintf("b%d", n), Backend: b})
			}
			i, err := ca.New(ca.Config{Backends: nbs, Authenticator: authn.Chain{},
				Policy: ca.Policy{TrustDomain: "cluster.local", ExperimentalComposite: true},
				Logger: catest.DiscardLogger(), Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			roots, err := i.CompositeRoots(context.Background())
			if (err != nil) != tt.wantErr || len(roots) != tt.wantRoots {
				t.Fatalf("CompositeRoots = %d roots, %v; want %d, error %v", len(roots), err, tt.wantRoots,
					tt.wantErr)
			}
			if tt.wantRoots == 1 && !roots[0].Equal(g.Root) {
				t.Fatal("not the composite root")
			}
			if tt.wantErr && !errors.Is(err, backends.ErrUnavailable) {
				t.Fatalf("%v; want the backends' errors wrapped", err)
			}
		})
	}
}

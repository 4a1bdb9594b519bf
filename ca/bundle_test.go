package ca_test

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
)

// flakyRoots is a real file backend whose Roots fails on demand: a fault injector.
type flakyRoots struct {
	backends.Backend
	fail bool
}

func (f *flakyRoots) Roots(ctx context.Context) ([]*x509.Certificate, error) {
	if f.fail {
		return nil, errors.New("roots unavailable")
	}
	return f.Backend.Roots(ctx)
}

func TestTrustBundle(t *testing.T) {
	dirA, genA := catest.FileCA(t)
	dirB, genB := catest.FileCA(t)
	_, genX := catest.FileCA(t)
	b := &flakyRoots{Backend: catest.FileBackend(t, dirB, nil)}
	i, err := ca.New(ca.Config{
		Backends: []ca.NamedBackend{{Name: "a", Backend: catest.FileBackend(t, dirA, nil)}, {Name: "b", Backend: b},
			{Name: "a-again", Backend: catest.FileBackend(t, dirA, nil)}},
		Authenticator: authn.Chain{}, Policy: ca.Policy{TrustDomain: "cluster.local"},
		Logger: catest.DiscardLogger(), Registerer: prometheus.NewRegistry(),
		ExtraRoots: func(context.Context) ([]*x509.Certificate, error) {
			return []*x509.Certificate{genX.Root, genA.Root}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := i.TrustBundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, w := string(first), string(genA.RootPEM)+string(genB.RootPEM)+string(genX.RootPEM); got != w {
		t.Fatalf("bundle = %s\nwant every backend's root once, in order, then the extra roots:\n%s", got, w)
	}
	b.fail = true
	second, err := i.TrustBundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(second) != string(first) {
		t.Error("a backend that cannot list its roots for a moment changed the bundle's bytes")
	}
}

// TestTrustBundleFollowsRootChanges: the bundle is encoded once and reused, but never after the roots change.
func TestTrustBundleFollowsRootChanges(t *testing.T) {
	dirA, genA := catest.FileCA(t)
	_, genX := catest.FileCA(t)
	_, genY := catest.FileCA(t)
	var extra []*x509.Certificate
	i, err := ca.New(ca.Config{
		Backends:      []ca.NamedBackend{{Name: "a", Backend: catest.FileBackend(t, dirA, nil)}},
		Authenticator: authn.Chain{}, Policy: ca.Policy{TrustDomain: "cluster.local"},
		Logger: catest.DiscardLogger(), Registerer: prometheus.NewRegistry(),
		ExtraRoots: func(context.Context) ([]*x509.Certificate, error) { return extra, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		extra []*x509.Certificate
		want  string
	}{
		{"the backend's root alone", nil, string(genA.RootPEM)},
		{"a federated root joins", []*x509.Certificate{genX.Root}, string(genA.RootPEM) + string(genX.RootPEM)},
		{"it is replaced by another", []*x509.Certificate{genY.Root}, string(genA.RootPEM) + string(genY.RootPEM)},
		{"the same root again, parsed anew", []*x509.Certificate{parse(t, genY.Root.Raw)},
			string(genA.RootPEM) + string(genY.RootPEM)},
		{"the extra root leaves", nil, string(genA.RootPEM)},
	}
	for _, s := range steps {
		extra = s.extra
		got, err := i.TrustBundle(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != s.want {
			t.Errorf("%s: bundle =\n%s\nwant\n%s", s.name, got, s.want)
		}
		if _ = append(got, 'x'); string(got) != s.want {
			t.Errorf("%s: appending to the bundle changed it", s.name)
		}
	}
}

func parse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// BenchmarkTrustBundle is the trust bundle of every issuance (one file backend): encoded again on every call
// before the cache, reused while the roots are unchanged now.
func BenchmarkTrustBundle(b *testing.B) {
	dir, _ := catest.FileCA(b)
	i, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "a", Backend: catest.FileBackend(b, dir, nil)}},
		Authenticator: authn.Chain{}, Policy: ca.Policy{TrustDomain: "cluster.local"},
		Logger: catest.DiscardLogger(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := i.TrustBundle(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

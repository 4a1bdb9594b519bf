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

package ca_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
)

// TestReloadBetweenSignAndVerify: the file backend switches to a CA with an unrelated root right after it signed
// a leaf under the old one (the operator replaced cacerts). The core verifies the leaf against the roots the
// backend signed under, so the request succeeds; it was refused as bad_chain when the core asked the backend for
// its roots after Sign and got the new ones.
func TestReloadBetweenSignAndVerify(t *testing.T) {
	dir, oldCA := catest.FileCA(t)
	fb := catest.FileBackend(t, dir, nil)
	newCA, err := file.Generate(file.GenerateOptions{Organization: catest.TrustDomain})
	if err != nil {
		t.Fatal(err)
	}
	f := &faulty{Backend: fb, t: t, tamper: func(_ *backends.SignResponse, t *testing.T) {
		if err := newCA.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		if switched, err := fb.Reload(); !switched || err != nil {
			t.Fatalf("Reload: %v %v, want the new CA active", switched, err)
		}
	}}
	i, dev := newIssuer(t, prometheus.NewRegistry(), ca.NamedBackend{Name: "file", Backend: f})
	res, err := i.Issue(context.Background(), request(t, dev))
	if err != nil {
		t.Fatalf("Issue across a reload: %v (reason %s), want the leaf signed under the old CA", err, ca.Reason(err))
	}
	if root := res.Chain[len(res.Chain)-1]; !root.Equal(oldCA.Root) {
		t.Fatalf("the leaf chains to %s, want the old root", root.Subject)
	}
	f.tamper = nil
	res, err = i.Issue(context.Background(), request(t, dev))
	if err != nil || !res.Chain[len(res.Chain)-1].Equal(newCA.Root) {
		t.Fatalf("Issue after the reload: %v, want a leaf under the new root", err)
	}
}

// TestBackendCannotChooseItsRoots: a backend's answer names the roots it signed under, and the core accepts
// only roots the backend serves from Roots; a chain to a root it merely claims is refused.
func TestBackendCannotChooseItsRoots(t *testing.T) {
	dir, _ := catest.FileCA(t)
	otherDir, _ := catest.FileCA(t)
	other := catest.FileBackend(t, otherDir, nil)
	f := &faulty{Backend: catest.FileBackend(t, dir, nil), t: t, tamper: func(r *backends.SignResponse, t *testing.T) {
		o, err := other.Sign(context.Background(),
			&backends.SignRequest{PublicKey: r.Leaf().PublicKey, URIs: r.Leaf().URIs, TTL: r.Leaf().NotAfter.Sub(
				r.Leaf().NotBefore)})
		if err != nil {
			t.Fatal(err)
		}
		r.Chain, r.Roots = o.Chain, o.Roots
	}}
	i, dev := newIssuer(t, prometheus.NewRegistry(), ca.NamedBackend{Name: "file", Backend: f})
	res, err := i.Issue(context.Background(), request(t, dev))
	if !errors.Is(err, backends.ErrBadChain) || res != nil {
		t.Fatalf("Issue: %v, %v; want ErrBadChain and nothing issued", res, err)
	}
}

package ca_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
)

// A registration authority's request is issued for the CSR's SPIFFE ID (an alias trust domain becomes the
// mesh's), by the backends it is routed to only, and refused with the gRPC path's error kinds otherwise.
func TestIssueDelegated(t *testing.T) {
	reg := prometheus.NewRegistry()
	dirA, genA := catest.FileCA(t)
	dirB, genB := catest.FileCA(t)
	first := &faulty{Backend: catest.FileBackend(t, dirA, reg), t: t}
	i, err := ca.New(ca.Config{
		Backends: []ca.NamedBackend{{Name: "first", Backend: first},
			{Name: "second", Backend: catest.FileBackend(t, dirB, nil)}},
		Authenticator: authn.Chain{},
		Policy:        ca.Policy{TrustDomain: "cluster.local", TrustDomainAliases: []string{"old.example"}},
		Logger:        catest.DiscardLogger(), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	istiod := &authn.Caller{Namespace: "istio-system", ServiceAccount: "istiod", Method: "k8s-csr"}
	csrFor := func(o catest.CSROptions) []byte { b, _ := catest.CSR(t, o); return b }
	const id = "spiffe://cluster.local/ns/shop/sa/cart"

	ok := []struct {
		name     string
		req      ca.DelegatedRequest
		backend  string
		issuerCA string
	}{
		{"the CSR's identity is issued by the first backend", ca.DelegatedRequest{Authority: istiod,
			CSR: csrFor(catest.CSROptions{URIs: []string{id}})}, "first", genA.Intermediate.Subject.String()},
		{"routing to the second backend skips the first", ca.DelegatedRequest{Authority: istiod,
			CSR: csrFor(catest.CSROptions{URIs: []string{id}}), Backends: []string{"second"}}, "second",
			genB.Intermediate.Subject.String()},
		{"an alias trust domain is issued in the mesh's", ca.DelegatedRequest{Authority: istiod,
			CSR: csrFor(catest.CSROptions{URIs: []string{"spiffe://old.example/ns/shop/sa/cart"}})}, "first",
			genA.Intermediate.Subject.String()},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			res, err := i.IssueDelegated(context.Background(), &c.req)
			if err != nil {
				t.Fatal(err)
			}
			leaf := res.Chain[0]
			if res.Backend != c.backend || leaf.Issuer.String() != c.issuerCA {
				t.Errorf("signed by %s (%s), want %s", res.Backend, leaf.Issuer, c.backend)
			}
			want := csr.Identity{TrustDomain: "cluster.local", Namespace: "shop", ServiceAccount: "cart"}
			if res.Identity != want || len(leaf.URIs) != 1 || leaf.URIs[0].String() != id {
				t.Errorf("identity %s, URIs %v; want %s", res.Identity, leaf.URIs, id)
			}
		})
	}

	first.fail = backends.ErrUnavailable
	t.Run("failover stays within the routed backends", func(t *testing.T) {
		_, err := i.IssueDelegated(context.Background(), &ca.DelegatedRequest{Authority: istiod,
			CSR: csrFor(catest.CSROptions{URIs: []string{id}}), Backends: []string{"first"}})
		if !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable from the only routed backend", err)
		}
	})
	first.fail = nil

	refused := []struct {
		name string
		req  ca.DelegatedRequest
		want error
	}{
		{"a refusal found by the transport", ca.DelegatedRequest{Authority: istiod,
			CSR:     csrFor(catest.CSROptions{URIs: []string{id}}),
			Refusal: ca.ErrPermissionDenied}, ca.ErrPermissionDenied},
		{"no authority", ca.DelegatedRequest{CSR: csrFor(catest.CSROptions{URIs: []string{id}})},
			authn.ErrUnauthenticated},
		{"a foreign trust domain", ca.DelegatedRequest{Authority: istiod,
			CSR: csrFor(catest.CSROptions{URIs: []string{"spiffe://evil.example/ns/shop/sa/cart"}})},
			ca.ErrIdentityMismatch},
		{"no SPIFFE ID", ca.DelegatedRequest{Authority: istiod,
			CSR: csrFor(catest.CSROptions{DNS: []string{"cart.shop.svc"}})}, ca.ErrIdentityMismatch},
		{"a second URI", ca.DelegatedRequest{Authority: istiod,
			CSR: csrFor(catest.CSROptions{URIs: []string{id, "spiffe://cluster.local/ns/shop/sa/admin"}})},
			ca.ErrForbiddenSAN},
		{"a URI that is not a workload SPIFFE ID", ca.DelegatedRequest{Authority: istiod,
			CSR: csrFor(catest.CSROptions{URIs: []string{"https://example.com/"}})}, ca.ErrIdentityMismatch},
		{"a CA certificate", ca.DelegatedRequest{Authority: istiod,
			CSR: csrFor(catest.CSROptions{URIs: []string{id}, IsCA: true})}, ca.ErrCARequested},
		{"a weak key", ca.DelegatedRequest{Authority: istiod,
			CSR: csrFor(catest.CSROptions{URIs: []string{id}, Key: catest.RSAKey(t, 1024)})}, csr.ErrKeyPolicy},
		{"not a CSR", ca.DelegatedRequest{Authority: istiod, CSR: []byte("hello")}, csr.ErrInvalidCSR},
	}
	for _, c := range refused {
		t.Run(c.name+" is refused", func(t *testing.T) {
			_, err := i.IssueDelegated(context.Background(), &c.req)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	t.Run("routing to a backend that is not configured is an internal error", func(t *testing.T) {
		_, err := i.IssueDelegated(context.Background(), &ca.DelegatedRequest{Authority: istiod,
			CSR: csrFor(catest.CSROptions{URIs: []string{id}}), Backends: []string{"third"}})
		if err == nil || ca.Classify(err).Reason != "internal" {
			t.Fatalf("got %v, want an internal error", err)
		}
	})
}

package ca_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// blocking is a real file backend whose Sign waits until release is closed: it holds a request in flight.
type blocking struct {
	backends.Backend
	entered chan struct{}
	release chan struct{}
}

func (b *blocking) Sign(ctx context.Context, req *backends.SignRequest) (*backends.SignResponse, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.Backend.Sign(ctx, req)
}

func limitedIssuer(
	t *testing.T,
	lim ca.Limits,
	clock func() time.Time,
	b backends.Backend,
) (*ca.Issuer, *devtoken.Minter) {
	t.Helper()
	return newIssuerWith(t, ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: b}}, Limits: lim,
		Clock: clock, Registerer: prometheus.NewRegistry()})
}

func TestPerCallerRateLimit(t *testing.T) {
	dir, _ := catest.FileCA(t)
	now := time.Now()
	clock := func() time.Time { return now }
	i, dev := limitedIssuer(t, ca.Limits{PerCallerRate: 1, PerCallerBurst: 2}, clock, catest.FileBackend(t, dir, nil))
	ctx := context.Background()
	for n := range 2 {
		if _, err := i.Issue(ctx, request(t, dev)); err != nil {
			t.Fatalf("request %d within the burst: %v", n, err)
		}
	}
	res, err := i.Issue(ctx, request(t, dev))
	if !errors.Is(err, ca.ErrRateLimited) || res != nil {
		t.Fatalf("third request at once: %v, %v; want ErrRateLimited and nothing issued", res, err)
	}
	if c := ca.Classify(err); c.Code != codes.ResourceExhausted || c.Reason != "rate_limited" {
		t.Errorf("class %s/%s, want ResourceExhausted/rate_limited (istio-agent retries it)", c.Code, c.Reason)
	}
	other := request(t, dev)
	tok, _ := dev.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "other"})
	other.Credentials.Token = tok
	other.CSR, _ = catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/other")
	if _, err := i.Issue(ctx, other); err != nil {
		t.Errorf("another caller was throttled with the first: %v", err)
	}
	now = now.Add(time.Second)
	if _, err := i.Issue(ctx, request(t, dev)); err != nil {
		t.Errorf("a second later the caller is still throttled: %v", err)
	}
}

func TestMaxInFlight(t *testing.T) {
	dir, _ := catest.FileCA(t)
	b := &blocking{Backend: catest.FileBackend(t, dir, nil), entered: make(chan struct{}, 1),
		release: make(chan struct{})}
	i, dev := limitedIssuer(t, ca.Limits{MaxInFlight: 1}, nil, b)
	ctx := context.Background()
	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() { _, firstErr = i.Issue(ctx, request(t, dev)) })
	<-b.entered
	res, err := i.Issue(ctx, request(t, dev))
	if !errors.Is(err, ca.ErrOverloaded) || res != nil {
		t.Fatalf("a request beyond the in-flight limit: %v, %v; want ErrOverloaded", res, err)
	}
	if c := ca.Classify(err); c.Code != codes.ResourceExhausted || c.Reason != "overloaded" {
		t.Errorf("class %s/%s, want ResourceExhausted/overloaded", c.Code, c.Reason)
	}
	close(b.release)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	go func() { <-b.entered }()
	if _, err := i.Issue(ctx, request(t, dev)); err != nil {
		t.Errorf("after the first request finished: %v", err)
	}
}

package stepca_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/stepca"
	"github.com/meshca/meshca/backends/stepca/stepcatest"
)

// TestOutageAndRecovery stops step-ca under a Backend, expects fast ErrUnavailable, restarts it on the same
// port with the same database and expects the same Backend to sign again.
func TestOutageAndRecovery(t *testing.T) {
	srv := stepcatest.Start(t, stepcatest.Options{})
	t.Logf("step-ca started in %s", srv.StartupTime)
	ctx := context.Background()
	for _, b := range []*stepca.Backend{newBackend(t, jwkConfig(srv)), newBackend(t, x5cConfig(srv))} {
		if _, err := b.Sign(ctx, signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", time.Hour)); err != nil {
			t.Fatalf("Sign before the outage: %v", err)
		}
	}
	jwk, x5c := newBackend(t, jwkConfig(srv)), newBackend(t, x5cConfig(srv))
	for _, b := range []*stepca.Backend{jwk, x5c} { // warm keep-alive connections that the outage will break
		if _, err := b.Sign(ctx, signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", time.Hour)); err != nil {
			t.Fatal(err)
		}
	}

	stopStart := time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("step-ca stopped in %s", time.Since(stopStart))
	const bound = 500 * time.Millisecond
	for _, b := range []*stepca.Backend{jwk, x5c} {
		for i := range 3 {
			start := time.Now()
			_, err := b.Sign(ctx, signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", time.Hour))
			elapsed := time.Since(start)
			if !errors.Is(err, backends.ErrUnavailable) {
				t.Fatalf("Sign %d with step-ca down: error = %v, want ErrUnavailable", i, err)
			}
			if elapsed > bound {
				t.Errorf("Sign %d with step-ca down took %s, want under %s", i, elapsed, bound)
			}
		}
		if err := b.Check(ctx); !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("Check with step-ca down = %v, want ErrUnavailable", err)
		}
		if _, err := b.CRL(ctx); !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("CRL with step-ca down = %v, want ErrUnavailable", err)
		}
		if roots, err := b.Roots(ctx); err != nil || len(roots) != 1 {
			t.Errorf("Roots with step-ca down = %d, %v; want the cached root", len(roots), err)
		}
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("step-ca restarted in %s", srv.StartupTime)
	for _, b := range []*stepca.Backend{jwk, x5c} {
		if _, err := b.Sign(ctx, signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", time.Hour)); err != nil {
			t.Fatalf("Sign after restart with the same Backend: %v", err)
		}
		if err := b.Check(ctx); err != nil {
			t.Errorf("Check after restart: %v", err)
		}
	}
}

// TestNewWhileStepCAIsDown: meshca may start before step-ca; the backend is unavailable until step-ca answers.
func TestNewWhileStepCAIsDown(t *testing.T) {
	srv := stepcatest.Start(t, stepcatest.Options{})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, jwkConfig(srv)) // pinned by fingerprint: nothing fetched yet
	ctx := context.Background()
	if _, err := b.Roots(ctx); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Roots before step-ca ever answered = %v, want ErrUnavailable", err)
	}
	req := signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", time.Hour)
	if _, err := b.Sign(ctx, req); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Sign = %v, want ErrUnavailable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sign(ctx, signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", time.Hour)); err != nil {
		t.Fatalf("Sign once step-ca is up: %v", err)
	}
}

// TestX5CCredentialAboutToExpireMakesTheBackendUnavailable: with less than a minute of credential left,
// step-ca would refuse every certificate, so the backend reports unavailable and the core fails over.
func TestX5CCredentialAboutToExpireMakesTheBackendUnavailable(t *testing.T) {
	srv := sharedServer(t)
	cfg := x5cConfig(srv)
	cfg.Clock = func() time.Time { return srv.X5C.NotAfter.Add(-30 * time.Second) }
	b := newBackend(t, cfg)
	_, err := b.Sign(context.Background(), signRequest(t, ecKey(t), "spiffe://cluster.local/ns/a/sa/b", time.Hour))
	if !errors.Is(err, backends.ErrUnavailable) || !strings.Contains(err.Error(), "renew") {
		t.Fatalf("Sign = %v, want ErrUnavailable telling the operator to renew the credential", err)
	}
	if err := b.Check(context.Background()); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Check = %v, want ErrUnavailable", err)
	}
}

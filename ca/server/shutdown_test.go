package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/devtoken"
)

// gated is a real file backend whose Sign, once armed, waits until released (or its context ends): a
// request held in flight.
type gated struct {
	backends.Backend
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gated) Sign(ctx context.Context, req *backends.SignRequest) (*backends.SignResponse, error) {
	if g.armed.Load() {
		g.entered <- struct{}{}
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Backend.Sign(ctx, req)
}

type shutdownRig struct {
	gate     *gated
	tokens   *devtoken.Minter
	iss      *ca.Issuer
	conn     *grpc.ClientConn
	httpAddr string
	cancel   context.CancelFunc
	done     chan struct{} // closed when Serve returned, with err
	err      error
}

func startShutdownRig(t *testing.T, cfg server.Config) *shutdownRig {
	t.Helper()
	r, srv, gl, hl := newShutdownRig(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.httpAddr = cancel, hl.Addr().String()
	go func() { r.err = srv.Serve(ctx, gl, hl); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Error("server did not stop")
		}
	})
	roots, err := r.iss.Roots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if r.conn, err = grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(creds)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.conn.Close() })
	catest.Eventually(t, 10*time.Second, "meshca serving", func() error { return r.readyz() })
	return r
}

// newShutdownRig builds a server on the gated file backend and its two listeners, without serving.
func newShutdownRig(t *testing.T, cfg server.Config) (*shutdownRig, *server.Server, net.Listener, net.Listener) {
	t.Helper()
	dir, _ := catest.FileCA(t)
	r := &shutdownRig{gate: &gated{Backend: catest.FileBackend(t, dir, nil), entered: make(chan struct{}, 1),
		release: make(chan struct{})}, done: make(chan struct{})}
	var err error
	if r.tokens, err = devtoken.Generate(""); err != nil {
		t.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: r.tokens.Issuer, Keys: r.tokens.Keys()}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.iss, err = ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: r.gate}}, Authenticator: j,
		Policy: ca.Policy{TrustDomain: catest.TrustDomain}, Logger: catest.DiscardLogger(),
		Audit: catest.DiscardLogger()}); err != nil {
		t.Fatal(err)
	}
	cfg.IPAddresses, cfg.Logger = []string{"127.0.0.1"}, catest.DiscardLogger()
	srv, err := server.New(r.iss, cfg)
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return r, srv, gl, hl
}

func (r *shutdownRig) readyz() error {
	resp, err := http.Get("http://" + r.httpAddr + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// holdRequest sends a request that stays in flight in the gated backend, and returns its outcome.
func (r *shutdownRig) holdRequest(t *testing.T) <-chan error {
	t.Helper()
	r.gate.armed.Store(true)
	csr, _ := catest.WorkloadCSR(t, sleepID)
	tok := mint(t, r.tokens, devtoken.Claims{})
	out := make(chan error, 1)
	go func() {
		_, err := call(t, r.conn, tok, &pb.IstioCertificateRequest{Csr: string(csr)})
		out <- err
	}()
	select {
	case <-r.gate.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the backend")
	}
	return out
}

// TestShutdownDrainsInFlightRequests: on shutdown, readiness goes false first while an in-flight request is
// still served to completion, then meshca stops.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	r := startShutdownRig(t, server.Config{ShutdownTimeout: 10 * time.Second})
	inFlight := r.holdRequest(t)
	r.cancel()
	catest.Eventually(t, 5*time.Second, "/readyz not ready while draining", func() error {
		if err := r.readyz(); err == nil {
			return errors.New("/readyz still answers ok")
		}
		return nil
	})
	close(r.gate.release)
	if err := <-inFlight; err != nil {
		t.Fatalf("the request in flight at shutdown: %v, want it served", err)
	}
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("Serve: %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("meshca did not stop after its last request finished")
	}
}

// TestShutdownIsBounded: a request that never finishes does not hold shutdown past ShutdownTimeout.
func TestShutdownIsBounded(t *testing.T) {
	r := startShutdownRig(t, server.Config{ShutdownTimeout: 300 * time.Millisecond})
	inFlight := r.holdRequest(t)
	start := time.Now()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatal("a stuck request held shutdown for 5s")
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Fatalf("shutdown took %s, want the 300ms bound (and not much more)", d)
	}
	if err := <-inFlight; status.Code(err) == codes.OK {
		t.Fatal("the stuck request succeeded after the server stopped")
	}
}

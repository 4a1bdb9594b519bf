package catest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/devtoken"
)

// TrustDomain is the trust domain of test meshes.
const TrustDomain = "cluster.local"

// FileCA writes a fresh root and intermediate in the cacerts layout to a temporary directory.
func FileCA(tb testing.TB) (string, *file.Generated) {
	tb.Helper()
	g, err := file.Generate(file.GenerateOptions{Organization: TrustDomain})
	if err != nil {
		tb.Fatal(err)
	}
	dir := filepath.Join(tb.TempDir(), "cacerts")
	if err := g.WriteDir(dir); err != nil {
		tb.Fatal(err)
	}
	return dir, g
}

// FileBackend starts a file backend on dir, closed in Cleanup.
func FileBackend(tb testing.TB, dir string, reg prometheus.Registerer) *file.Backend {
	tb.Helper()
	b, err := file.New(context.Background(), file.Config{Dir: dir, ReloadInterval: 50 * time.Millisecond,
		Logger: DiscardLogger(), Registerer: reg})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// DiscardLogger returns a logger that drops everything.
func DiscardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Meshca is an in-process meshca serving on loopback.
type Meshca struct {
	Issuer   *ca.Issuer
	Tokens   *devtoken.Minter
	Registry *prometheus.Registry
	// GRPCAddr and HTTPAddr are host:port on 127.0.0.1.
	GRPCAddr, HTTPAddr string
	// Roots verifies the serving certificate and the issued chains.
	Roots *x509.CertPool
}

// MeshcaOptions changes StartMeshca's defaults.
type MeshcaOptions struct {
	// Backends default to one file backend on a fresh CA.
	Backends []ca.NamedBackend
	// Policy defaults to the test trust domain with default lifetimes.
	Policy *ca.Policy
	// Rules are the per-namespace policy rules (ca.Config.Rules).
	Rules policy.Config
	// Impersonator enables ImpersonatedIdentity.
	Impersonator authn.Impersonator
	// Registry defaults to a new registry.
	Registry *prometheus.Registry
	// Logger defaults to discarding logs.
	Logger *slog.Logger
	// ServingTTL is the lifetime of meshca's serving certificate; default the server's (24h).
	ServingTTL time.Duration
	// Observer is told of every issuance (ca.Config.Observer).
	Observer ca.IssuanceObserver
	// Limits are the issuer's flood limits; the zero value is meshca's defaults.
	Limits ca.Limits
	// ExtraRoots join the trust bundle of every response (ca.Config.ExtraRoots).
	ExtraRoots []*x509.Certificate
	// ExtraRootsFunc, instead of ExtraRoots, is ca.Config.ExtraRoots itself (e.g. a rotation's next root).
	ExtraRootsFunc func(context.Context) ([]*x509.Certificate, error)
	// WithdrawnRoots and LifetimeCap are ca.Config's (a rotation's old root while retiring, its leaf cap).
	WithdrawnRoots func() []*x509.Certificate
	LifetimeCap    func() time.Duration
	// Server is the base server configuration (e.g. its CRL source); addresses, names, logger and metrics
	// are set by StartMeshca.
	Server server.Config
}

// StartMeshca starts meshca in-process with the dev token issuer and client-certificate authentication,
// serving gRPC and HTTP on free loopback ports until the test ends.
func StartMeshca(tb testing.TB, o MeshcaOptions) *Meshca {
	tb.Helper()
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Logger == nil {
		o.Logger = DiscardLogger()
	}
	if o.Backends == nil {
		dir, _ := FileCA(tb)
		o.Backends = []ca.NamedBackend{{Name: "file", Backend: FileBackend(tb, dir, o.Registry)}}
	}
	if o.Policy == nil {
		o.Policy = &ca.Policy{TrustDomain: TrustDomain}
	}
	dev, err := devtoken.Generate("")
	if err != nil {
		tb.Fatal(err)
	}
	jwt, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	chain := authn.Chain{jwt}
	cfg := ca.Config{Backends: o.Backends, Authenticator: &chain, Impersonator: o.Impersonator,
		Policy: *o.Policy, Rules: o.Rules, Limits: o.Limits, Observer: o.Observer, Logger: o.Logger, Audit: o.Logger,
		Registerer: o.Registry}
	if o.ExtraRoots != nil {
		cfg.ExtraRoots = func(context.Context) ([]*x509.Certificate, error) { return o.ExtraRoots, nil }
	}
	cfg.WithdrawnRoots, cfg.LifetimeCap = o.WithdrawnRoots, o.LifetimeCap
	if o.ExtraRootsFunc != nil {
		cfg.ExtraRoots = o.ExtraRootsFunc
	}
	issuer, err := ca.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	chain = append(chain, &authn.ClientCert{Roots: issuer.Roots, IssuingCAs: issuer.IssuingCAs,
		MaxLifetime: issuer.MaxTTL(), TrustDomains: issuer.TrustDomains()})
	scfg := o.Server
	scfg.DNSNames, scfg.IPAddresses = []string{"localhost"}, []string{"127.0.0.1"}
	scfg.Logger, scfg.Gatherer, scfg.ServingTTL = o.Logger, o.Registry, o.ServingTTL
	srv, err := server.New(issuer, scfg)
	if err != nil {
		tb.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, gl, hl) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("meshca server: %v", err)
		}
	})
	roots, err := issuer.Roots(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	return &Meshca{Issuer: issuer, Tokens: dev, Registry: o.Registry, GRPCAddr: gl.Addr().String(),
		HTTPAddr: hl.Addr().String(), Roots: pool}
}

// Dial returns a gRPC client connection to m that verifies its serving certificate like istio-agent does,
// optionally presenting a client certificate.
func (m *Meshca) Dial(tb testing.TB, clientCert ...tls.Certificate) *grpc.ClientConn {
	tb.Helper()
	cfg := &tls.Config{
		RootCAs:      m.Roots,
		ServerName:   "127.0.0.1",
		Certificates: clientCert,
		MinVersion:   tls.VersionTLS12,
	}
	conn, err := grpc.NewClient(m.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// Token mints a dev token for ns/sa with default claims.
func (m *Meshca) Token(tb testing.TB, ns, sa string) string {
	tb.Helper()
	tok, err := m.Tokens.Mint(devtoken.Claims{Namespace: ns, ServiceAccount: sa})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

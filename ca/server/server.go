package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/internal/compliance"
)

// ErrNoCRL is what a Config.CRL source returns when the CA publishes no CRL: /crl and /crl.pem answer 404
// without logging an error on every fetch.
var ErrNoCRL = errors.New("no CRL is published")

// ErrCRLNotCurrent is what a Config.CRL or CRLPEM source returns when it has CRLs but not a current set (one
// past its nextUpdate, one missing): /crl and /crl.pem answer 503 with the error's text, and the source is
// expected to have logged and counted the problem once, not on every fetch.
var ErrCRLNotCurrent = errors.New("the CRLs are not current")

// Config configures the network side of meshca.
type Config struct {
	// GRPCAddr and HTTPAddr are the listen addresses. Defaults ":15012" and ":15014".
	GRPCAddr string `json:"grpcAddr,omitempty"`
	HTTPAddr string `json:"httpAddr,omitempty"`
	// DNSNames and IPAddresses go in the serving certificate: every name agents use in CA_ADDR.
	DNSNames    []string `json:"dnsNames,omitempty"`
	IPAddresses []string `json:"ipAddresses,omitempty"`
	// Namespace and ServiceAccount form meshca's own SPIFFE ID in its serving certificate.
	// Defaults istio-system and meshca.
	Namespace      string `json:"namespace,omitempty"`
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// ServingTTL is the lifetime of the serving certificate. Default 24h.
	ServingTTL time.Duration `json:"servingTTL,omitempty"`
	// TLSCertFile and TLSKeyFile, when set, are used instead of a certificate issued through the backends.
	TLSCertFile string `json:"tlsCertFile,omitempty"`
	TLSKeyFile  string `json:"tlsKeyFile,omitempty"`
	// PQCOnly restricts TLS key exchange on the gRPC port to the hybrid post-quantum X25519MLKEM768. The
	// top-level compliancePolicy: pqc (or COMPLIANCE_POLICY=pqc) does this and more, on every connection.
	PQCOnly bool `json:"pqcOnly,omitempty"`
	// DrainDelay is how long meshca keeps accepting requests after readiness went false on shutdown, so that
	// load balancers stop sending new ones first (e.g. 5s in Kubernetes). Default 0.
	DrainDelay time.Duration `json:"drainDelay,omitempty"`
	// ShutdownTimeout bounds how long requests in flight at shutdown may take to finish; then they are cut.
	// Default 10s.
	ShutdownTimeout time.Duration `json:"shutdownTimeout,omitempty"`
	// TLSPolicy is the COMPLIANCE_POLICY of the gRPC port; Handshakes, when set, counts its handshakes.
	TLSPolicy  compliance.Policy      `json:"-"`
	Handshakes *compliance.Handshakes `json:"-"`

	// Pages are further read-only pages of the HTTP port, by path (GET only), e.g. the rotation status page.
	Pages map[string]http.Handler `json:"-"`

	// CRL returns the DER CRL to publish at /crl (and /crl.pem when CRLPEM is nil); nil serves 404.
	CRL func(ctx context.Context) ([]byte, error) `json:"-"`
	// CRLPEM, when set, returns the ca-crl.pem served at /crl.pem: the CRLs of every CA of the chain.
	CRLPEM func(ctx context.Context) ([]byte, error) `json:"-"`
	// Gatherer serves /metrics; nil serves the default registry.
	Gatherer prometheus.Gatherer `json:"-"`
	Logger   *slog.Logger        `json:"-"`
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	for _, ip := range c.IPAddresses {
		if net.ParseIP(ip) == nil {
			errs = append(errs, fmt.Errorf("server: ipAddresses: %q is not an IP address", ip))
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("server: tlsCertFile and tlsKeyFile go together"))
	}
	if c.ServingTTL < 0 {
		errs = append(errs, errors.New("server: servingTTL must not be negative"))
	}
	if c.DrainDelay < 0 || c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("server: drainDelay and shutdownTimeout must not be negative"))
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every unset setting at the default New applies (for meshca config print
// --defaults).
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.GRPCAddr == "" {
		c.GRPCAddr = ":15012"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":15014"
	}
	if c.Namespace == "" {
		c.Namespace = "istio-system"
	}
	if c.ServiceAccount == "" {
		c.ServiceAccount = "meshca"
	}
	if c.ServingTTL == 0 {
		c.ServingTTL = 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Gatherer == nil {
		c.Gatherer = prometheus.DefaultGatherer
	}
}

// Server serves the CSR endpoint and the HTTP side port.
type Server struct {
	cfg    Config
	issuer *ca.Issuer
	cert   *servingCert
	grpc   *grpc.Server
	health *health.Server
	http   *http.Server
	// draining is set when shutdown begins: /readyz and the gRPC health service answer not ready.
	draining atomic.Bool
}

// New builds a Server; nothing listens until Serve or ListenAndServe.
func New(issuer *ca.Issuer, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	id, err := issuer.Mesh().Identity(cfg.Namespace, cfg.ServiceAccount)
	if err != nil {
		return nil, fmt.Errorf("server: meshca's own identity: %w", err)
	}
	s := &Server{cfg: cfg, issuer: issuer, health: health.NewServer()}
	s.cert = &servingCert{issuer: issuer, identity: id, dnsNames: cfg.DNSNames, ttl: cfg.ServingTTL,
		certFile: cfg.TLSCertFile, keyFile: cfg.TLSKeyFile, log: cfg.Logger}
	for _, ip := range cfg.IPAddresses {
		s.cert.ips = append(s.cert.ips, net.ParseIP(ip))
	}
	var curves []tls.CurveID
	if cfg.PQCOnly {
		curves = []tls.CurveID{tls.X25519MLKEM768}
	}
	tc := s.cert.tlsConfig(curves)
	cfg.TLSPolicy.Apply(tc)
	cfg.Handshakes.Instrument(tc, "grpc")
	s.grpc = grpc.NewServer(grpcServerOptions(credentials.NewTLS(tc))...)
	pb.RegisterIstioCertificateServiceServer(s.grpc, &service{issuer: issuer})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.http = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: MaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)}
	return s, nil
}

// ListenAndServe listens on the configured addresses and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	gl, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("server: gRPC listener: %w", err)
	}
	hl, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("server: HTTP listener: %w", err)
	}
	return s.Serve(ctx, gl, hl)
}

// Serve obtains the serving certificate, then serves gRPC on gl and HTTP on hl until ctx ends, and stops
// gracefully: readiness goes false, requests are still accepted for DrainDelay, then those in flight finish
// within ShutdownTimeout (beyond it they are cut), and every step is logged. A ctx that ends before the
// certificate is obtained is a stop too: Serve closes the listeners and returns nil.
func (s *Server) Serve(ctx context.Context, gl, hl net.Listener) error {
	if err := s.cert.refresh(ctx); err != nil {
		gl.Close()
		hl.Close()
		if ctx.Err() != nil { // told to stop while starting: a stop, not a failure
			return nil
		}
		return fmt.Errorf("server: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.cert.run(ctx)
	go s.watchHealth(ctx)
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(gl) }()
	go func() {
		if err := s.http.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	s.cfg.Logger.Info("meshca serving", "grpc", gl.Addr().String(), "http", hl.Addr().String(),
		"trust_domain", s.issuer.TrustDomain())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.shutdown()
	return err
}

// shutdown turns readiness off, waits DrainDelay, then stops gRPC gracefully within ShutdownTimeout, and
// HTTP last (so /readyz says not ready throughout).
func (s *Server) shutdown() {
	start := time.Now()
	s.draining.Store(true)
	s.health.Shutdown()
	s.cfg.Logger.Info("meshca shutting down: not ready; draining", "drain_delay", s.cfg.DrainDelay,
		"shutdown_timeout", s.cfg.ShutdownTimeout)
	time.Sleep(s.cfg.DrainDelay)
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
		s.cfg.Logger.Info("meshca stopped: every request in flight finished",
			"elapsed", time.Since(start).Round(time.Millisecond))
	case <-time.After(s.cfg.ShutdownTimeout):
		s.grpc.Stop()
		s.cfg.Logger.Warn("meshca stopped: requests still in flight after the shutdown timeout were cut",
			"shutdown_timeout", s.cfg.ShutdownTimeout)
	}
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	_ = s.http.Shutdown(sctx)
}

// watchHealth keeps the gRPC health service in step with backend readiness.
func (s *Server) watchHealth(ctx context.Context) {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st := healthpb.HealthCheckResponse_SERVING
		if err := s.ready(cctx); err != nil {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		cancel()
		s.health.SetServingStatus("", st)
		s.health.SetServingStatus(pb.IstioCertificateService_ServiceDesc.ServiceName, st)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// ServingCertificate returns the leaf of the TLS certificate the gRPC port presents now, or nil before Serve has
// obtained one. It follows every renewal and file reload: read it at scrape time for the expiry gauges.
func (s *Server) ServingCertificate() *x509.Certificate {
	if c := s.cert.cur.Load(); c != nil {
		return c.Leaf
	}
	return nil
}

func (s *Server) ready(ctx context.Context) error {
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	if s.cert.cur.Load() == nil {
		return errors.New("no serving certificate yet")
	}
	return s.issuer.Check(ctx)
}

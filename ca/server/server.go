package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/internal/compliance"
)

// ErrNoCRL is what a Config.CRL source returns when the CA publishes no CRL: /crl and /crl.pem answer 404
// without logging an error on every fetch.
var ErrNoCRL = errors.New("no CRL is published")

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
	// TLSPolicy is the COMPLIANCE_POLICY of the gRPC port; Handshakes, when set, counts its handshakes.
	TLSPolicy  compliance.Policy      `json:"-"`
	Handshakes *compliance.Handshakes `json:"-"`

	// CRL returns the DER CRL to publish at /crl and /crl.pem; nil serves 404.
	CRL func(ctx context.Context) ([]byte, error) `json:"-"`
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
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
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
}

// New builds a Server; nothing listens until Serve or ListenAndServe.
func New(issuer *ca.Issuer, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	id := csr.Identity{TrustDomain: issuer.TrustDomain(), Namespace: cfg.Namespace, ServiceAccount: cfg.ServiceAccount}
	if err := id.Validate(); err != nil {
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
// gracefully (in-flight requests finish, bounded by 10s).
func (s *Server) Serve(ctx context.Context, gl, hl net.Listener) error {
	if err := s.cert.refresh(ctx); err != nil {
		gl.Close()
		hl.Close()
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
	s.health.Shutdown()
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		s.grpc.Stop()
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = s.http.Shutdown(sctx)
	return err
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

func (s *Server) ready(ctx context.Context) error {
	if s.cert.cur.Load() == nil {
		return errors.New("no serving certificate yet")
	}
	return s.issuer.Check(ctx)
}

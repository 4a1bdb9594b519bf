package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/devtoken"
)

// serveOptions are the flags of meshca serve.
type serveOptions struct {
	config, dev, grpcAddr, httpAddr, logLevel, logFormat string
	adminAddr                                            string
}

func serveCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve (--config FILE | --dev DIR)",
		Short: "Serve the CSR endpoint (gRPC :15012) and HTTP (:15014)",
		Example: "  meshca serve --config /etc/meshca/config.yaml\n" +
			"  meshca serve --dev .dev --grpc-addr 127.0.0.1:25012 --http-addr 127.0.0.1:25014",
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), o, cmd.ErrOrStderr())
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "",
		"configuration file (YAML or JSON); see README.md and 'meshca config validate'")
	f.StringVar(&o.dev, "dev", "", "development mode: serve the dev CA in `DIR` (created by 'meshca init' or now) "+
		"on loopback, trusting 'meshca token'")
	f.StringVar(&o.grpcAddr, "grpc-addr", "",
		"gRPC listen address (overrides the config; default :15012, dev 127.0.0.1:15012)")
	f.StringVar(&o.httpAddr, "http-addr", "",
		"HTTP listen address (overrides the config; default :15014, dev 127.0.0.1:15014)")
	f.StringVar(&o.adminAddr, "admin-addr", "", "revocation admin API listen address, loopback only "+
		"(overrides crl.admin.addr; default "+defaultAdminAddr+")")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: "+strings.Join(logLevels, ", "))
	f.StringVar(&o.logFormat, "log-format", "", "log format: json or text (default json, text in dev mode)")
	cmd.MarkFlagsMutuallyExclusive("config", "dev")
	cmd.MarkFlagsOneRequired("config", "dev")
	return cmd
}

var logLevels = []string{"debug", "info", "warn", "error"}

// loggedError has already been written to the log: run exits 1 without printing it again.
type loggedError struct{ error }

func serve(ctx context.Context, o serveOptions, stderr io.Writer) error {
	format := o.logFormat
	if format == "" {
		format = map[bool]string{true: "text", false: "json"}[o.dev != ""]
	}
	log, err := newLogger(stderr, o.logLevel, format)
	if err != nil {
		return err
	}
	if err := serveLogged(ctx, o, log); err != nil {
		log.Error("meshca stopped", "cause", err.Error())
		return loggedError{err}
	}
	return nil
}

func serveLogged(ctx context.Context, o serveOptions, log *slog.Logger) error {
	ver, rev, gov, _ := buildInfo()
	log.Info("meshca starting", "version", ver, "revision", rev, "go", gov, "config", o.config, "dev", o.dev)
	var cfg *Config
	var extra []authn.Authenticator
	var err error
	if o.dev != "" {
		cfg, extra, err = devConfig(o.dev, log)
	} else {
		cfg, err = LoadConfig(o.config)
	}
	if err != nil {
		return err
	}
	if o.grpcAddr != "" {
		cfg.Server.GRPCAddr = o.grpcAddr
	}
	if o.httpAddr != "" {
		cfg.Server.HTTPAddr = o.httpAddr
	}
	if o.dev != "" {
		devDistributionPoints(cfg)
	}
	if o.adminAddr != "" && cfg.CRL != nil {
		cfg.CRL.Admin.Addr = o.adminAddr
		if err := cfg.CRL.Admin.Validate(); err != nil {
			return usageError{fmt.Errorf("--admin-addr: %w", err)}
		}
	}
	if err := errors.Join(checkAddrs(cfg.Server)...); err != nil {
		return fmt.Errorf("--grpc-addr/--http-addr: %w", err)
	}
	if cfg.AllowShortTTLs {
		log.Warn("allowShortTTLs is set: certificate lifetimes below the floor are allowed; for tests only",
			"floor", MinLifetime.String())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoGauge())
	a, err := build(ctx, cfg, log, reg, extra...)
	if err != nil {
		return err
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(a.run))
	var loops sync.WaitGroup
	for _, loop := range a.run {
		loops.Go(func() {
			if err := loop(ctx); err != nil && ctx.Err() == nil {
				errc <- err
				cancel() // a background loop that cannot run (e.g. leader election misconfigured) stops meshca
			}
		})
	}
	err = a.server.ListenAndServe(ctx)
	// The background loops (revocation state, publishers, scanners) finish their last write before the stores
	// they use are closed and serve returns; a loop that does not stop in time is logged, not waited for.
	cancel()
	stopped := make(chan struct{})
	go func() { loops.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(loopStopTimeout):
		log.Warn("background loops still running at exit", "waited", loopStopTimeout.String())
	}
	select {
	case lerr := <-errc:
		return lerr
	default:
	}
	if err == nil {
		log.Info("meshca shut down", "cause", context.Cause(ctx).Error())
	}
	return err
}

// loopStopTimeout bounds how long serve waits for its background loops after the servers have stopped.
const loopStopTimeout = 10 * time.Second

// buildInfoGauge is meshca_build_info{version,revision,goversion} = 1.
func buildInfoGauge() prometheus.Collector {
	ver, rev, gov, _ := buildInfo()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshca_build_info",
		Help: "meshca's version, VCS revision and Go version; always 1."}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(ver, rev, gov).Set(1)
	return g
}

// devConfig is the embedded default: the dev CA in dir/cacerts, the dev token issuer, loopback only.
func devConfig(dir string, log *slog.Logger) (*Config, []authn.Authenticator, error) {
	td, ok := devTrustDomain(filepath.Join(dir, "cacerts"))
	if !ok {
		td = "cluster.local"
	}
	if _, err := initDev(dir, td); err != nil {
		return nil, nil, err
	}
	dev, err := devtoken.Load("", filepath.Join(dir, devtoken.KeyFile))
	if err != nil {
		return nil, nil, err
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		return nil, nil, err
	}
	log.Warn("development mode: dev CA and dev token issuer; do not use in production", "dir", dir,
		"trust_domain", td)
	cfg := &Config{
		Issuance: ca.Policy{TrustDomain: td, MLDSA: true, ExperimentalComposite: true},
		Server: server.Config{GRPCAddr: "127.0.0.1:15012", HTTPAddr: "127.0.0.1:15014",
			DNSNames: []string{"localhost"}, IPAddresses: []string{"127.0.0.1", "::1"}},
		Backends: []BackendConfig{{Name: "file", File: &file.Config{Dir: filepath.Join(dir, "cacerts"),
			MLDSADir: filepath.Join(dir, mldsaCACerts), CompositeDir: filepath.Join(dir, compositeCACerts)}}},
		CRL:            devCRL(dir),
		AdminTokenFile: devAdminTokenFile(dir),
	}
	if err := loadDevPolicy(dir, cfg); err != nil {
		return nil, nil, err
	}
	return cfg, []authn.Authenticator{j}, cfg.Validate()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if !slices.Contains(logLevels, strings.ToLower(level)) || l.UnmarshalText([]byte(level)) != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: use one of %s", bounded(level),
			strings.Join(logLevels, ", "))}
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format %q: use json or text", bounded(format))}
}

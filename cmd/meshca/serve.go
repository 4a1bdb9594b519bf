package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/devtoken"
)

var errUsage = errors.New("usage")

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "configuration file (YAML or JSON); see README.md")
	devDir := fs.String("dev", "", "development mode: serve the dev CA in `DIR` (created by 'meshca init' or now) "+
		"on loopback, trusting 'meshca token'")
	grpcAddr := fs.String("grpc-addr", "",
		"gRPC listen address (overrides the config; default :15012, dev 127.0.0.1:15012)")
	httpAddr := fs.String("http-addr", "",
		"HTTP listen address (overrides the config; default :15014, dev 127.0.0.1:15014)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "", "log format: json or text (default json, text in dev mode)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if (*configFile == "") == (*devDir == "") {
		fmt.Fprintln(stderr, "meshca serve: give exactly one of --config FILE or --dev DIR")
		return errUsage
	}
	format := *logFormat
	if format == "" {
		format = map[bool]string{true: "text", false: "json"}[*devDir != ""]
	}
	log, err := newLogger(stderr, *logLevel, format)
	if err != nil {
		return err
	}
	var cfg *Config
	var extra []authn.Authenticator
	if *devDir != "" {
		cfg, extra, err = devConfig(*devDir, log)
	} else {
		cfg, err = LoadConfig(*configFile)
	}
	if err != nil {
		return err
	}
	if *grpcAddr != "" {
		cfg.Server.GRPCAddr = *grpcAddr
	}
	if *httpAddr != "" {
		cfg.Server.HTTPAddr = *httpAddr
	}
	if err := errors.Join(checkAddrs(cfg.Server)...); err != nil {
		return fmt.Errorf("--grpc-addr/--http-addr: %w", err)
	}
	if cfg.AllowShortTTLs {
		log.Warn("allowShortTTLs is set: certificate lifetimes below the floor are allowed; for tests only",
			"floor", MinLifetime.String())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a, err := build(ctx, cfg, log, reg, extra...)
	if err != nil {
		return err
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(a.run))
	for _, loop := range a.run {
		go func() {
			if err := loop(ctx); err != nil && ctx.Err() == nil {
				errc <- err
				cancel() // a background loop that cannot run (e.g. leader election misconfigured) stops meshca
			}
		}()
	}
	err = a.server.ListenAndServe(ctx)
	select {
	case lerr := <-errc:
		return lerr
	default:
		return err
	}
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
		Issuance: ca.Policy{TrustDomain: td},
		Server: server.Config{GRPCAddr: "127.0.0.1:15012", HTTPAddr: "127.0.0.1:15014",
			DNSNames: []string{"localhost"}, IPAddresses: []string{"127.0.0.1", "::1"}},
		Backends: []BackendConfig{{Name: "file", File: &file.Config{Dir: filepath.Join(dir, "cacerts")}}},
	}
	return cfg, []authn.Authenticator{j}, cfg.Validate()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use json or text", format)
}

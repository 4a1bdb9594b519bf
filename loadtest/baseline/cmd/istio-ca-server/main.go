// Command istio-ca-server serves istiod's own gRPC CA (istio.io/istio/security/pkg/server/ca with
// security/pkg/pki/ca's IstioCA) on the cacerts and dev token issuer of a meshca dev directory, so that
// meshca-loadtest can drive it exactly as it drives `meshca serve --dev`. Its /metrics carries the Go and
// process collectors (CPU, RSS, goroutines) the load tester reads.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
	"github.com/meshca/meshca/loadtest/baseline"
)

func main() {
	dir := flag.String("dev", ".dev", "meshca dev `dir` (`meshca init --dir DIR`): cacerts/ and the token key")
	grpcAddr := flag.String("grpc-addr", "127.0.0.1:16012", "gRPC listen `address`")
	httpAddr := flag.String("http-addr", "127.0.0.1:16014", "HTTP listen `address` (/metrics)")
	td := flag.String("trust-domain", "cluster.local", "trust domain of the issued SPIFFE IDs")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *grpcAddr, *httpAddr, *td); err != nil {
		fmt.Fprintln(os.Stderr, "istio-ca-server:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, grpcAddr, httpAddr, td string) error {
	cacerts := filepath.Join(dir, "cacerts")
	signer, err := baseline.LoadCA(cacerts)
	if err != nil {
		return err
	}
	c, err := baseline.NewIstioCA(cacerts)
	if err != nil {
		return err
	}
	dev, err := devtoken.Load("", filepath.Join(dir, devtoken.KeyFile))
	if err != nil {
		return err
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		return err
	}
	g, err := baseline.NewIstioServer(c, &baseline.JWTAuthenticator{JWT: j, TrustDomain: td}, signer)
	if err != nil {
		return err
	}
	gl, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Addr: httpAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	go func() { _ = hs.Serve(hl) }()
	go func() { <-ctx.Done(); g.GracefulStop(); _ = hs.Close() }()
	slog.Info("istiod CA server", "grpc", gl.Addr().String(), "http", hl.Addr().String())
	return g.Serve(gl)
}

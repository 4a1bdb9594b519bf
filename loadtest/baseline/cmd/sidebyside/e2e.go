package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/meshca/meshca/loadtest"
)

// server is one CA server process under test.
type server struct {
	name               string
	cmd                *exec.Cmd
	grpcAddr, httpAddr string
}

// startServer runs bin with args plus --grpc-addr and --http-addr on free loopback ports, its output to a log
// file in dir, and waits until its /metrics answers.
func startServer(ctx context.Context, name, dir, bin string, args ...string) (*server, error) {
	g, h := freeAddr(), freeAddr()
	s := &server{name: name, grpcAddr: g, httpAddr: h}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd = exec.CommandContext(ctx, bin, append(args, "--grpc-addr", g, "--http-addr", h)...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.metricsURL())
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("%s did not serve /metrics within 60s; see %s", name, logf.Name())
}

func (s *server) metricsURL() string { return "http://" + s.httpAddr + "/metrics" }

// stop ends the server with SIGTERM, then SIGKILL after 10s.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// e2eRun is one load-test run against one server.
type e2eRun struct {
	server, key, what string
	res               *loadtest.Result
	load              [3]float64 // load average after the run
}

// drive runs cfg against a fresh server process (so that its peak RSS and goroutines are this run's).
func drive(ctx context.Context, s *setup, name, bin string, args []string, cfg loadtest.Config,
	sampleGoroutines bool) (*loadtest.Result, error) {
	srv, err := startServer(ctx, name, s.dir, bin, args...)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	cfg.Addr, cfg.Roots, cfg.Tokens = srv.grpcAddr, s.roots, s.dev
	cfg.ServerPID = srv.cmd.Process.Pid // CPU and peak RSS from the kernel, at no cost to the server
	if sampleGoroutines {
		// Peak goroutines from /metrics every 500 ms; each scrape costs meshca ~4-5 ms of CPU (istiod's
		// smaller registry less), so the saturation runs, which report CPU per certificate, do not scrape.
		cfg.ServerMetrics = srv.metricsURL()
	}
	res, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if res.Invalid > 0 {
		return nil, fmt.Errorf("%s: %d invalid responses: %s", name, res.Invalid, res.Samples["invalid_response"])
	}
	if res.Server == nil {
		return nil, errors.New("no server stats")
	}
	return res, nil
}

// Command meshca-loadtest sends istio-agent-like certificate requests to meshca at a fixed rate and reports
// latency percentiles, throughput and errors by gRPC code. See docs/loadtest.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshca/meshca/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := loadtest.Command(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
)

// devServer is `meshca serve --dev` running in-process on free loopback ports.
type devServer struct {
	dir, grpcAddr, httpAddr string
	adminAddr               string
	stderr                  *catest.SyncBuffer
	stop                    context.CancelFunc
	done                    chan int // serve's exit code
}

// startDev runs serve --dev in a temporary directory until stop is called (or the test ends).
func startDev(t *testing.T) *devServer {
	t.Helper()
	return startDevIn(t, t.TempDir())
}

// startDevIn is startDev on the dev directory dir.
func startDevIn(t *testing.T, dir string) *devServer {
	t.Helper()
	d := &devServer{dir: dir, grpcAddr: fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t)),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t)), stderr: &catest.SyncBuffer{},
		done: make(chan int, 1), adminAddr: fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t))}
	ctx, stop := context.WithCancel(context.Background())
	d.stop = stop
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		d.done <- run(ctx, []string{"serve", "--dev", d.dir, "--grpc-addr", d.grpcAddr, "--http-addr", d.httpAddr,
			"--admin-addr", d.adminAddr},
			io.Discard, d.stderr)
	}()
	// Registered after t.TempDir's cleanup, so it runs first: serve has stopped writing into dir when it goes.
	t.Cleanup(func() {
		stop()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Errorf("serve --dev did not return within 20s of being stopped")
		}
	})
	return d
}

// serve --dev exports meshca_build_info and logs its shutdown with the cause.
func TestServeExportsBuildInfoAndLogsShutdown(t *testing.T) {
	d := startDev(t)
	want := fmt.Sprintf(`meshca_build_info{goversion=%q,revision=`, runtime.Version())
	var body string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + d.httpAddr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); strings.Contains(body, want) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in /metrics:\n%s\nlog:\n%s", want, body, d.stderr.String())
		}
	}
	d.stop()
	if code := <-d.done; code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, d.stderr.String())
	}
	if !strings.Contains(d.stderr.String(), `msg="meshca shut down" cause="context canceled"`) {
		t.Fatalf("no shutdown record with its cause:\n%s", d.stderr.String())
	}
}

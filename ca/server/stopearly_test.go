package server_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/meshca/meshca/ca/server"
)

// A stop asked for while Serve is still obtaining its serving certificate is a stop, not a failure: Serve
// returns nil and closes both listeners. (Before, it returned "issuing the serving certificate: context
// canceled", which failed tests whose cleanup stopped a server still starting, and made a pod told to stop
// during start-up exit with an error.)
func TestStopBeforeServingIsNotAnError(t *testing.T) {
	_, srv, gl, hl := newShutdownRig(t, server.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Serve(ctx, gl, hl); err != nil {
		t.Fatalf("Serve stopped before serving: %v, want nil", err)
	}
	for name, l := range map[string]net.Listener{"gRPC": gl, "HTTP": hl} {
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s listener still open after Serve returned: Accept = %v", name, err)
		}
	}
}

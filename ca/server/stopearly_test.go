package server_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/devtoken"
)

// A stop asked for while Serve is still obtaining its serving certificate is a stop, not a failure: Serve
// returns nil and closes both listeners. (Before, it returned "issuing the serving certificate: context
// canceled", which failed tests whose cleanup stopped a server still starting, and made a pod told to stop
// during start-up exit with an error.)
func TestStopBeforeServingIsNotAnError(t *testing.T) {
	dir, _ := catest.FileCA(t)
	tokens, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: tokens.Issuer, Keys: tokens.Keys()}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, nil)}},
		Authenticator: j, Policy: ca.Policy{TrustDomain: catest.TrustDomain}, Logger: catest.DiscardLogger(),
		Audit: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(iss, server.Config{IPAddresses: []string{"127.0.0.1"}, Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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

package main

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/internal/compliance"
)

// dialGRPC completes a TLS handshake with meshca's gRPC port (the serving certificate is not the point here).
func dialGRPC(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	cfg = cfg.Clone()
	cfg.InsecureSkipVerify = true //nolint:gosec // only the key exchange is under test
	cfg.NextProtos = []string{"h2"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	// The server checks the policy after the client's Finished: read until it answers or closes.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return tls.ConnectionState{}, err
		}
	}
	return c.ConnectionState(), nil
}

// serve --dev under COMPLIANCE_POLICY=pqc accepts only TLS 1.3 with X25519MLKEM768 on the gRPC port, and
// counts the handshakes by group; without the policy the same classical clients are accepted.
func TestServeAppliesCompliancePolicyToTheGRPCPort(t *testing.T) {
	classical := []struct {
		name string
		cfg  *tls.Config
	}{
		{"an X25519-only client", &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}}},
		{"a P-256-only client", &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}}},
		{"a TLS 1.2 client", &tls.Config{MaxVersion: tls.VersionTLS12}},
	}
	for _, policy := range []compliance.Policy{compliance.PQC, compliance.None} {
		t.Run("COMPLIANCE_POLICY="+string(policy), func(t *testing.T) {
			t.Setenv(compliance.EnvVar, string(policy))
			d := startDev(t)
			var st tls.ConnectionState
			var err error
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if st, err = dialGRPC(d.grpcAddr, &tls.Config{}); err == nil || time.Now().After(deadline) {
					break
				}
			}
			if err != nil || st.CurveID != tls.X25519MLKEM768 {
				t.Fatalf("default client: %v, group %s; log:\n%s", err, st.CurveID, d.stderr.String())
			}
			for _, c := range classical {
				_, err := dialGRPC(d.grpcAddr, c.cfg)
				if refused := err != nil; refused != (policy == compliance.PQC) {
					t.Errorf("%s: refused = %v (%v) under policy %q", c.name, refused, err, policy)
				}
			}
			resp, err := http.Get("http://" + d.httpAddr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := `meshca_tls_handshakes_total{endpoint="grpc",group="X25519MLKEM768",result="ok",version="TLS 1.3"}`
			if !strings.Contains(string(body), want) {
				t.Errorf("no %s in /metrics", want)
			}
		})
	}
}

// The API-server client follows the policy: restWithPolicy moves client-go's TLS settings into a transport
// of its own; a classical-only API server is unreachable under pqc and reachable without a policy.
func TestKubernetesClientFollowsTheCompliancePolicy(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{}`))
	}))
	srv.TLS = &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	for _, tc := range []struct {
		name    string
		policy  compliance.Policy
		refused bool
	}{
		{"under pqc the classical-only API server is refused", compliance.PQC, true},
		{"without a policy it is reached", compliance.None, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &rest.Config{Host: srv.URL, BearerToken: "t", TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
			if err := restWithPolicy(cfg, tc.policy); err != nil {
				t.Fatal(err)
			}
			hc, err := rest.HTTPClientFor(cfg)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Get(srv.URL + "/version")
			if err == nil {
				resp.Body.Close()
			}
			if (err != nil) != tc.refused {
				t.Fatalf("GET /version: %v; refused want %v", err, tc.refused)
			}
		})
	}
}

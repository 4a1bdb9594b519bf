package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/devtoken"
)

// TestOversizedMetadataIsRefused: a request whose headers exceed the limit never reaches authentication.
func TestOversizedMetadataIsRefused(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{})
	conn := m.Dial(t)
	good, _ := catest.WorkloadCSR(t, sleepID)
	tok := mint(t, m.Tokens, devtoken.Claims{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok, "x-junk", strings.Repeat("a", 40<<10))
	resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx,
		&pb.IstioCertificateRequest{Csr: string(good)})
	if err == nil || resp != nil {
		t.Fatalf("a request with 40 KiB of headers was served (%v)", err)
	}
	if c := status.Code(err); c == codes.OK || c == codes.Unauthenticated {
		t.Errorf("code = %v, want the transport's refusal", c)
	}
	// The same request with normal headers is served: the refusal was the size.
	if _, err := call(t, conn, tok, &pb.IstioCertificateRequest{Csr: string(good)}); err != nil {
		t.Fatalf("a normal request after the refused one: %v", err)
	}
}

// notReady is a real file backend whose readiness check fails with a detail that must stay in the log.
type notReady struct{ backends.Backend }

func (notReady) Check(context.Context) error {
	return errors.New("dial tcp 10.1.2.3:8200: vault.internal.example: connection refused")
}

// TestReadyzKeepsDetailInTheLog: /readyz answers anyone, so it says "not ready" without backend addresses.
func TestReadyzKeepsDetailInTheLog(t *testing.T) {
	dir, _ := catest.FileCA(t)
	m := catest.StartMeshca(t, catest.MeshcaOptions{Backends: []ca.NamedBackend{
		{Name: "file", Backend: notReady{catest.FileBackend(t, dir, nil)}}}})
	resp, err := http.Get("http://" + m.HTTPAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	if strings.Contains(string(body), "10.1.2.3") || strings.Contains(string(body), "vault.internal") {
		t.Errorf("/readyz shows the backend's address to anyone: %q", body)
	}
}

// TestCallerStringsAreBoundedInTheAudit: a caller-chosen clusterid does not fill meshca's log.
func TestCallerStringsAreBoundedInTheAudit(t *testing.T) {
	var logs catest.SyncBuffer
	m := catest.StartMeshca(t, catest.MeshcaOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	good, _ := catest.WorkloadCSR(t, sleepID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	junk := strings.Repeat("Z", 20000)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer not-a-token", "clusterid", junk)
	if _, err := pb.NewIstioCertificateServiceClient(m.Dial(t)).CreateCertificate(ctx,
		&pb.IstioCertificateRequest{Csr: string(good)}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("code %v, want Unauthenticated", status.Code(err))
	}
	out := logs.String()
	if !strings.Contains(out, "certificate request not served") {
		t.Fatalf("no audit record: %s", out)
	}
	if strings.Contains(out, strings.Repeat("Z", 100)) || len(out) > 4000 {
		t.Errorf("audit record carries the caller's clusterid unbounded (%d bytes of log)", len(out))
	}
}

// TestNoCRLIsNotAnError: a CA without a CRL answers 404 on /crl and /crl.pem without an error in the log
// on every fetch (Prometheus-style scrapers and proxies poll it).
func TestNoCRLIsNotAnError(t *testing.T) {
	var logs catest.SyncBuffer
	m := catest.StartMeshca(t, catest.MeshcaOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Server: server.Config{CRL: func(context.Context) ([]byte, error) {
			return nil, fmt.Errorf("file backend: %w", server.ErrNoCRL)
		}}})
	for _, path := range []string{"/crl", "/crl.pem", "/crl"} {
		resp, err := http.Get("http://" + m.HTTPAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", path, resp.StatusCode)
		}
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("fetching a CRL that does not exist logged an error:\n%s", logs.String())
	}
}

// TestFailedAuthenticationsAreLimitedPerSource is part of hole 5 of issue 15: one source sending junk
// credentials is throttled (ResourceExhausted, before any authentication work) once it has used its burst of
// failures, and served again once the bucket refills.
func TestFailedAuthenticationsAreLimitedPerSource(t *testing.T) {
	const rate, burst = 1, 5
	m := catest.StartMeshca(t, catest.MeshcaOptions{Limits: ca.Limits{FailedAuthnRate: rate, FailedAuthnBurst: burst}})
	conn := m.Dial(t)
	good, _ := catest.WorkloadCSR(t, sleepID)
	req := &pb.IstioCertificateRequest{Csr: string(good)}
	codesSeen := map[codes.Code]int{}
	start := time.Now()
	for i := range 40 {
		_, err := call(t, conn, fmt.Sprintf("junk-token-%d", i), req)
		codesSeen[status.Code(err)]++
	}
	// The bucket refills while the 40 requests run (slowly on a loaded machine): the burst plus what the
	// elapsed time earned may be authenticated, the rest is throttled.
	earned := int(time.Since(start).Seconds() * rate)
	authenticated, throttled := codesSeen[codes.Unauthenticated], codesSeen[codes.ResourceExhausted]
	if authenticated < burst || authenticated > burst+earned {
		t.Errorf("%d of 40 junk requests from one source were authenticated (and refused), want the burst of %d "+
			"plus at most %d refilled", authenticated, burst, earned)
	}
	if authenticated+throttled != 40 {
		t.Errorf("junk requests answered with codes %v, want only Unauthenticated and ResourceExhausted", codesSeen)
	}
	if n := metricValue(t, m, "meshca_csr_requests_total", "reason", "authn_rate_limited"); n != float64(throttled) {
		t.Errorf("meshca_csr_requests_total{reason=authn_rate_limited} = %g, want %d", n, throttled)
	}
	// The bucket refills at 1/s: a good request is served again a moment later.
	catest.Eventually(t, 5*time.Second, "a good request after the throttle", func() error {
		_, err := call(t, conn, m.Token(t, "default", "sleep"), req)
		return err
	})
}

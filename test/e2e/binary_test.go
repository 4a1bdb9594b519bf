package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
)

// buildMeshca builds bin/meshca's command into a temporary directory.
func buildMeshca(tb testing.TB) string {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "meshca")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/meshca")
	cmd.Dir = catest.RepoRoot(tb)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/meshca: %v\n%s", err, b)
	}
	return out
}

// serveDev runs `meshca serve --dev dir` on the given loopback addresses until the test ends, and waits until
// /readyz answers 200.
func serveDev(tb testing.TB, bin, dir, grpcAddr, httpAddr string) {
	tb.Helper()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", "--dev", dir, "--grpc-addr", grpcAddr, "--http-addr", httpAddr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting meshca: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			tb.Error("meshca did not stop within 15s of SIGTERM")
		}
		if tb.Failed() {
			tb.Logf("meshca serve log:\n%s", logs.String()) // written only by the exited process now
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			tb.Fatal("meshca serve exited before it was ready")
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := http.Get("http://" + httpAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatal("meshca serve not ready within 20s")
		}
	}
}

// httpGet returns the body of a 200 answer.
func httpGet(tb testing.TB, url string) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return b
}

// scrape sums the samples of metric name, in Prometheus text format at url, whose label set contains every
// `key="value"` in labels.
func scrape(tb testing.TB, url, name string, labels ...string) float64 {
	tb.Helper()
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(httpGet(tb, url)))
	for sc.Scan() {
		line := sc.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			tb.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// TestPilotAgentWithMeshcaServeDev is the README's developer flow with real binaries: `meshca serve --dev`
// and a token from `meshca token`, and pilot-agent with its default settings (RSA-2048, SECRET_TTL 24h) gets a
// certificate. The in-process tests cover the same issuance; this one covers cmd/meshca's own wiring.
func TestPilotAgentWithMeshcaServeDev(t *testing.T) {
	agentBin := catest.Binary(t, "pilot-agent")
	t.Parallel()
	meshca := buildMeshca(t)
	dir := filepath.Join(t.TempDir(), "dev")
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t))
	serveDev(t, meshca, dir, grpcAddr, httpAddr)

	tok, err := exec.Command(meshca, "token", "--dir", dir, "--namespace", "default", "--service-account", "sleep").
		Output()
	if err != nil {
		t.Fatalf("meshca token: %v", err)
	}
	rootPEM, err := os.ReadFile(filepath.Join(dir, "cacerts", "root-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if served := httpGet(t, "http://"+httpAddr+"/roots.pem"); !bytes.Equal(
		bytes.TrimSpace(served),
		bytes.TrimSpace(rootPEM),
	) {
		t.Errorf("/roots.pem is not cacerts/root-cert.pem:\n%s", served)
	}
	roots, err := parsePEMCerts(rootPEM)
	if err != nil {
		t.Fatal(err)
	}

	a := startAgent(t, agentBin, grpcAddr, rootPEM, agentConfig{Namespace: "default", ServiceAccount: "sleep",
		Token: strings.TrimSpace(string(tok)), SecretTTL: 24 * time.Hour})
	obs := a.watchCerts(t, 1, 30*time.Second)
	t.Logf("first certificate %s after pilot-agent start", obs[0].seen.Sub(a.started).Round(time.Millisecond))
	const wantID = "spiffe://cluster.local/ns/default/sa/sleep"
	verifyChain(t, roots[0], obs[0].chain, wantID)
	verifySVID(t, roots[0], obs[0].chain, wantID)
	if life := time.Until(obs[0].chain[0].NotAfter); life < 23*time.Hour || life > 24*time.Hour {
		t.Errorf("certificate expires in %s, want the 24h SECRET_TTL", life)
	}
	if got := scrape(t, "http://"+httpAddr+"/metrics", "meshca_certificates_issued_total",
		`key_type="RSA-2048"`); got != 1 {
		t.Errorf("/metrics: meshca_certificates_issued_total{key_type=\"RSA-2048\"} = %v, want 1", got)
	}
	if got := scrape(t, "http://"+httpAddr+"/metrics", "citadel_server_success_cert_issuance_count"); got != 1 {
		t.Errorf("/metrics: citadel_server_success_cert_issuance_count = %v, want 1", got)
	}
	// The per-identity expiry gauge is the notAfter of the certificate the agent received.
	if got := scrape(t, "http://"+httpAddr+"/metrics", "meshca_identity_certificate_expiry_timestamp_seconds",
		`service_account="sleep"`); got != float64(obs[0].chain[0].NotAfter.Unix()) {
		t.Errorf("/metrics: meshca_identity_certificate_expiry_timestamp_seconds{sleep} = %v, want %d", got,
			obs[0].chain[0].NotAfter.Unix())
	}
	// meshca inspect reads the agent's OUTPUT_CERTS: a 24h certificate is within a 2 day threshold (exit 1),
	// not within 12h (exit 0), and its chain and key check out.
	out := filepath.Join(a.dir, "out")
	for _, tc := range []struct {
		within string
		code   int
	}{{"2d", 1}, {"12h", 0}} {
		cmd := exec.Command(meshca, "inspect", "--within", tc.within, out)
		report, _ := cmd.Output()
		if code := cmd.ProcessState.ExitCode(); code != tc.code || !strings.Contains(string(report), wantID) ||
			strings.Contains(string(report), "Problems") {
			t.Errorf("meshca inspect --within %s %s: exit %d (want %d), want %s and no problems:\n%s", tc.within,
				out, code, tc.code, wantID, report)
		}
	}
}

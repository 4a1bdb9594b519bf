package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
)

// policyVersion is a policy file whose rule "tenant" issues at most max to namespace tenant.
func policyVersion(max string) string {
	return "policy:\n  rules:\n  - name: tenant\n    match: {namespaces: [tenant]}\n    lifetime: {max: " + max + "}\n"
}

// writeAtomically replaces path as a mounted ConfigMap changes: a complete new file renamed into place.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyReloadUnderLoad: while clients request certificates without pause, the policy file changes 40
// times; every request succeeds, and the lifetimes issued follow the file. Then a broken policy is refused
// (counted, logged) and the last good one stays in force.
func TestPolicyReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	writeAtomically(t, path, policyVersion("2h"))
	p, _, err := readPolicyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := catest.StartMeshca(t, catest.MeshcaOptions{Rules: p, Limits: ca.Limits{PerCallerRate: -1}})
	r, err := newPolicyReloader(path, m.Issuer, catest.DiscardLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r.interval = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx) //nolint:errcheck // returns nil when ctx ends

	conn := m.Dial(t)
	client := pb.NewIstioCertificateServiceClient(conn)
	csrPEM, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/tenant/sa/app")
	md, _ := structpb.NewStruct(map[string]any{"CertSigner": ""})
	tok := m.Token(t, "tenant", "app")
	issue := func() (time.Duration, error) {
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rcancel()
		rctx = metadata.AppendToOutgoingContext(rctx, "authorization", "Bearer "+tok,
			"clusterid", authn.DefaultClusterID)
		resp, err := client.CreateCertificate(rctx,
			&pb.IstioCertificateRequest{Csr: string(csrPEM), ValidityDuration: 86400, Metadata: md})
		if err != nil {
			return 0, err
		}
		block, _ := pem.Decode([]byte(resp.GetCertChain()[0]))
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return 0, err
		}
		return leaf.NotAfter.Sub(leaf.NotBefore).Round(time.Hour), nil
	}
	var ok, failed atomic.Int64
	var seenMu sync.Mutex
	seen := map[time.Duration]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				life, err := issue()
				if err != nil {
					failed.Add(1)
					t.Errorf("request during reloads failed: %v", err)
					continue
				}
				ok.Add(1)
				seenMu.Lock()
				seen[life] = true
				seenMu.Unlock()
			}
		})
	}
	reloads := func(result string) float64 {
		var d dto.Metric
		if err := r.reloads.WithLabelValues(result).Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue()
	}
	eventually := func(what string, cond func() bool) {
		catest.Eventually(t, 5*time.Second, what, func() error {
			if !cond() {
				return errors.New("not yet")
			}
			return nil
		})
	}
	for n := range 40 {
		want := reloads("ok") + 1
		writeAtomically(t, path, policyVersion(map[bool]string{true: "3h", false: "2h"}[n%2 == 0]))
		eventually("the policy reloaded", func() bool { return reloads("ok") >= want })
		time.Sleep(10 * time.Millisecond) // let requests run under this version
	}
	writeAtomically(t, path, "policy:\n  rules:\n  - name: tenant\n    backends: [nowhere]\n")
	eventually("the broken policy refused", func() bool { return reloads("invalid") >= 1 })
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 40 {
		t.Errorf("%d requests failed and %d succeeded during reloads; want 0 failed, at least 40 served",
			failed.Load(), ok.Load())
	}
	t.Logf("%d requests served, 0 failed, across 40 reloads", ok.Load())
	seenMu.Lock()
	if !seen[2*time.Hour] || !seen[3*time.Hour] {
		t.Errorf("lifetimes issued %v, want both 2h and 3h: the reloads did not take effect", seen)
	}
	seenMu.Unlock()
	// The last good file (n = 39: max 2h) stays in force after the broken one.
	if life, err := issue(); err != nil || life != 2*time.Hour {
		t.Errorf("after a broken policy file: lifetime %s (%v), want the previous policy's 2h", life, err)
	}
	if got := reloads("invalid"); got != 1 {
		t.Errorf("meshca_policy_reloads_total{result=invalid} = %v, want 1", got)
	}
}

// TestServeDevReloadsPolicy: serve --dev DIR applies DIR/policy.yaml at start (its rules appear in
// meshca_policy_decisions_total) and re-reads it when it changes (meshca_policy_reloads_total, the new rule).
func TestServeDevReloadsPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts meshca serve and waits for a reload (5s): skipped under -short")
	}
	dir := t.TempDir()
	if code := run(context.Background(), []string{"init", "--dir", dir}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("init exited %d", code)
	}
	path := filepath.Join(dir, DevPolicyFile)
	writeAtomically(t, path,
		"policy:\n  rules:\n  - {name: freeze, match: {namespaces: [payments]}, deny: {reason: x}}\n")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &catest.SyncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve", "--dev", dir, "--grpc-addr",
			fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t)), "--http-addr", httpAddr}, io.Discard, logs)
	}()
	defer func() { stop(); <-done }()
	metricsHave := func(want string) func() error {
		return func() error {
			resp, err := http.Get("http://" + httpAddr + "/metrics")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(b), want) {
				return fmt.Errorf("no %s in /metrics; log:\n%s", want, logs.String())
			}
			return nil
		}
	}
	catest.Eventually(t, 20*time.Second, "the dev policy's rule",
		metricsHave(`meshca_policy_decisions_total{decision="deny",rule="freeze"} 0`))
	writeAtomically(t, path, "policy:\n  rules:\n  - {name: thaw, match: {namespaces: [payments]}}\n")
	catest.Eventually(t, 20*time.Second, "the reload", metricsHave(`meshca_policy_reloads_total{result="ok"} 1`))
	catest.Eventually(t, 5*time.Second, "the new rule",
		metricsHave(`meshca_policy_decisions_total{decision="allow",rule="thaw"} 0`))
}

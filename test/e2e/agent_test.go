package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/test/meshcatest"
)

// agentConfig is one pilot-agent run.
type agentConfig struct {
	Namespace, ServiceAccount string
	// Token is the service-account token the agent presents (./var/run/secrets/tokens/istio-token).
	Token string
	// ECDSA sets ECC_SIGNATURE_ALGORITHM=ECDSA; otherwise the agent makes RSA-2048 keys.
	ECDSA bool
	// SecretTTL is the certificate lifetime the agent asks for.
	SecretTTL time.Duration
}

// agent is a running pilot-agent in its own working directory and process group.
type agent struct {
	dir     string
	started time.Time
	cmd     *exec.Cmd
	exited  chan struct{}
	stop    func()
}

// startAgent runs Istio's pilot-agent ("proxy sidecar", no Envoy) against the CA at caAddr, as it runs in a
// pod: token and mesh root (rootPEM) under ./var/run/secrets, certificates written to ./out. The process group
// is killed when the test ends; the agent's log is printed if the test failed.
func startAgent(tb testing.TB, bin, caAddr string, rootPEM []byte, cfg agentConfig) *agent {
	tb.Helper()
	dir := tb.TempDir()
	for _, d := range []string{"var/run/secrets/tokens", "var/run/secrets/istio", "etc/istio/proxy", "out"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "var/run/secrets/tokens/istio-token"), []byte(cfg.Token),
		0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "var/run/secrets/istio/root-cert.pem"), rootPEM, 0o644); err != nil {
		tb.Fatal(err)
	}
	proxyConfig, err := json.Marshal(map[string]any{"discoveryAddress": caAddr, "statusPort": catest.FreePort(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		tb.Fatal(err)
	}
	ecc := ""
	if cfg.ECDSA {
		ecc = "ECDSA"
	}
	cmd := exec.Command(bin, "proxy", "sidecar")
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"DISABLE_ENVOY=true",
		"OUTPUT_CERTS=./out",
		"CA_ADDR=" + caAddr,
		"POD_NAMESPACE=" + cfg.Namespace,
		"POD_NAME=" + cfg.ServiceAccount + "-0",
		"SERVICE_ACCOUNT=" + cfg.ServiceAccount,
		"TRUST_DOMAIN=" + meshcatest.TrustDomain,
		"ISTIO_META_CLUSTER_ID=Kubernetes",
		fmt.Sprintf("SECRET_TTL=%s", cfg.SecretTTL),
		"ECC_SIGNATURE_ALGORITHM=" + ecc,
		"PROXY_CONFIG=" + string(proxyConfig),
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	a := &agent{dir: dir, cmd: cmd, exited: make(chan struct{})}
	a.started = time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		tb.Fatalf("starting pilot-agent: %v", err)
	}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(a.exited)
	}()
	a.stop = sync.OnceFunc(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the whole group: pilot-agent and anything it started
		select {
		case <-a.exited:
		case <-time.After(10 * time.Second):
			tb.Errorf("pilot-agent (pid %d) did not exit after SIGKILL", cmd.Process.Pid)
		}
	})
	tb.Cleanup(func() {
		a.stop()
		if tb.Failed() {
			tb.Logf("pilot-agent log (%s):\n%s", dir, a.log())
		}
	})
	return a
}

func (a *agent) log() string {
	b, _ := os.ReadFile(filepath.Join(a.dir, "agent.log"))
	return string(b)
}

func (a *agent) out(name string) string { return filepath.Join(a.dir, "out", name) }

// chain reads ./out/cert-chain.pem; it fails while the file is missing or being replaced.
func (a *agent) chain() ([]*x509.Certificate, error) {
	b, err := os.ReadFile(a.out("cert-chain.pem"))
	if err != nil {
		return nil, err
	}
	return parsePEMCerts(b)
}

func parsePEMCerts(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs, nil
}

// observation is one certificate the agent wrote, and when the test first saw it.
type observation struct {
	seen  time.Time
	chain []*x509.Certificate
}

// watchCerts polls ./out/cert-chain.pem until it has seen n distinct leaf serials, and returns them in order.
// It fails the test at the deadline or if the agent exits.
func (a *agent) watchCerts(tb testing.TB, n int, timeout time.Duration) []observation {
	tb.Helper()
	var obs []observation
	seen := map[string]bool{}
	deadline := time.After(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for len(obs) < n {
		select {
		case <-a.exited:
			tb.Fatalf("pilot-agent exited after %d certificate(s) of %d", len(obs), n)
		case <-deadline:
			tb.Fatalf("pilot-agent wrote %d distinct certificate(s) in %s, want %d", len(obs), timeout, n)
		case <-tick.C:
		}
		chain, err := a.chain()
		if err != nil {
			continue // not written yet, or being replaced
		}
		if s := chain[0].SerialNumber.String(); !seen[s] {
			seen[s] = true
			obs = append(obs, observation{seen: time.Now(), chain: chain})
		}
	}
	return obs
}

// TestPilotAgentObtainsAndRotates runs Istio's real pilot-agent against meshca with a 10s SECRET_TTL and
// checks every certificate it writes: chain to the mesh root, exact SPIFFE ID, requested key type and
// lifetime, go-spiffe verification, and meshca's own metrics and audit records for each one.
func TestPilotAgentObtainsAndRotates(t *testing.T) {
	bin := catest.Binary(t, "pilot-agent")
	t.Parallel()
	const (
		ns, sa    = "default", "sleep"
		secretTTL = 10 * time.Second
		// The first certificate plus two rotations. The agent renews at half the lifetime, every ~5s.
		wantCerts = 3
	)
	wantID := "spiffe://cluster.local/ns/" + ns + "/sa/" + sa
	for _, tc := range []struct {
		name    string
		ecdsa   bool
		keyType string // meshca's key_type label
		checkPK func(tb testing.TB, pub any)
	}{
		{name: "default RSA-2048 keys", keyType: "RSA-2048", checkPK: func(tb testing.TB, pub any) {
			tb.Helper()
			if k, ok := pub.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
				tb.Errorf("leaf key is %T, want RSA-2048", pub)
			}
		}},
		{name: "ECDSA P-256 keys with ECC_SIGNATURE_ALGORITHM=ECDSA", ecdsa: true, keyType: "ECDSA-P256",
			checkPK: func(tb testing.TB, pub any) {
				tb.Helper()
				if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
					tb.Errorf("leaf key is %T, want ECDSA P-256", pub)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mc := meshcatest.Start(t, meshcatest.Options{MinTTL: 5 * time.Second})
			a := startAgent(t, bin, mc.GRPCAddr, mc.RootPEM, agentConfig{
				Namespace:      ns,
				ServiceAccount: sa,
				Token:          mc.Token(t, ns, sa),
				ECDSA:          tc.ecdsa,
				SecretTTL:      secretTTL,
			})

			obs := a.watchCerts(t, wantCerts, 45*time.Second)
			a.stop()
			t.Logf("first certificate %s after pilot-agent start", obs[0].seen.Sub(a.started).Round(time.Millisecond))
			for n := 1; n < len(obs); n++ {
				t.Logf("rotation %d after %s", n, obs[n].seen.Sub(obs[n-1].seen).Round(time.Millisecond))
			}

			for n, o := range obs {
				leaf := o.chain[0]
				if len(o.chain) < 2 {
					t.Errorf("certificate %d: chain has %d element(s), want leaf and CA chain", n, len(o.chain))
				}
				verifyChain(t, mc.Root, o.chain, wantID)
				verifySVID(t, mc.Root, o.chain, wantID)
				tc.checkPK(t, leaf.PublicKey)
				if life := leaf.NotAfter.Sub(o.seen); life <= 0 || life > secretTTL+time.Second {
					t.Errorf(
						"certificate %d: expires %s after it was written, want about SECRET_TTL %s",
						n,
						life,
						secretTTL,
					)
				}
			}

			// The files the agent left are one consistent set: key matches the last certificate, root is ours.
			certPEM, err := os.ReadFile(a.out("cert-chain.pem"))
			if err != nil {
				t.Fatal(err)
			}
			keyPEM, err := os.ReadFile(a.out("key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Errorf("out/key.pem does not match out/cert-chain.pem: %v", err)
			} else {
				tc.checkPK(t, pair.Leaf.PublicKey)
			}
			if rootPEM, err := os.ReadFile(a.out("root-cert.pem")); err != nil {
				t.Error(err)
			} else if roots, err := parsePEMCerts(rootPEM); err != nil || !roots[len(roots)-1].Equal(mc.Root) {
				t.Errorf("out/root-cert.pem is not the mesh root (err %v)", err)
			}

			// meshca saw the same: one audited issuance per certificate, with the caller's identity and key type.
			issued := map[string]meshcatest.AuditRecord{}
			for _, r := range mc.Audit() {
				if r.Attrs["outcome"] == "issued" {
					issued[r.Attrs["serial"]] = r
				}
			}
			for n, o := range obs {
				r, ok := issued[fmt.Sprintf("%x", o.chain[0].SerialNumber)]
				if !ok {
					t.Errorf("certificate %d (serial %x) has no audit record", n, o.chain[0].SerialNumber)
					continue
				}
				if r.Attrs["identity"] != wantID || r.Attrs["caller"] != "ns/"+ns+"/sa/"+sa ||
					r.Attrs["key_type"] != tc.keyType {
					t.Errorf("certificate %d audit record = %v, want identity %s, caller ns/%s/sa/%s, key_type %s",
						n, r.Attrs, wantID, ns, sa, tc.keyType)
				}
			}
			if got := mc.Counter(t, "meshca_certificates_issued_total",
				map[string]string{"key_type": tc.keyType}); got < wantCerts {
				t.Errorf("meshca_certificates_issued_total{key_type=%q} = %v, want >= %d", tc.keyType, got, wantCerts)
			}
			if got := mc.Counter(t, "meshca_csr_requests_total", map[string]string{"result": "rejected"}); got != 0 {
				t.Errorf("meshca rejected %v request(s) from a correctly configured agent", got)
			}
			if n := strings.Count(a.log(), "generated new workload certificate"); n < wantCerts {
				t.Errorf("agent log has %d \"generated new workload certificate\" lines, want >= %d", n, wantCerts)
			}
		})
	}
}

// TestPilotAgentWithAnotherServiceAccountsToken gives the agent a token for default/other while it claims
// SERVICE_ACCOUNT=sleep: its CSR asks for an identity the token does not prove. meshca must refuse with
// PermissionDenied (reason identity_mismatch, audited) and the agent must write no certificate.
func TestPilotAgentWithAnotherServiceAccountsToken(t *testing.T) {
	bin := catest.Binary(t, "pilot-agent")
	t.Parallel()
	mc := meshcatest.Start(t, meshcatest.Options{MinTTL: 5 * time.Second})
	a := startAgent(t, bin, mc.GRPCAddr, mc.RootPEM, agentConfig{Namespace: "default", ServiceAccount: "sleep",
		Token: mc.Token(t, "default", "other"), SecretTTL: 10 * time.Second})

	deadline := time.Now().Add(30 * time.Second)
	for mc.Counter(t, "meshca_csr_requests_total", map[string]string{"reason": "identity_mismatch"}) == 0 ||
		!strings.Contains(a.log(), "PermissionDenied") {
		if time.Now().After(deadline) {
			t.Fatal("no identity_mismatch refusal seen by meshca and reported to pilot-agent within 30s")
		}
		select {
		case <-a.exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
	a.stop()

	if _, err := os.Stat(a.out("cert-chain.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pilot-agent wrote out/cert-chain.pem (stat err %v) although every request was refused", err)
	}
	if got := mc.Counter(t, "meshca_certificates_issued_total", nil); got != 0 {
		t.Errorf("meshca_certificates_issued_total = %v, want 0", got)
	}
	if got := mc.Counter(t, "citadel_server_id_extraction_err_count", nil); got == 0 {
		t.Error("citadel_server_id_extraction_err_count = 0, want the refusal counted")
	}
	var refused int
	for _, r := range mc.Audit() {
		switch r.Attrs["outcome"] {
		case "issued":
			t.Errorf("audit shows an issuance: %v", r.Attrs)
		case "rejected":
			refused++
			if r.Attrs["reason"] != "identity_mismatch" || r.Attrs["caller"] != "ns/default/sa/other" {
				t.Errorf(
					"refusal audit record = %v, want reason identity_mismatch for caller ns/default/sa/other",
					r.Attrs,
				)
			}
		}
	}
	if refused == 0 {
		t.Error("no refusal audit record")
	}
}

// TestPilotAgentTrustsEveryRootOfTheBundle: during a root overlap (a rotation, a federated root) meshca sends
// both roots as the last element of its response, and the real pilot-agent writes both to root-cert.pem, the
// trust anchors Envoy is given. istio-agent learns trust from nowhere else.
func TestPilotAgentTrustsEveryRootOfTheBundle(t *testing.T) {
	bin := catest.Binary(t, "pilot-agent")
	t.Parallel()
	_, next := catest.FileCA(t)
	mc := meshcatest.Start(t, meshcatest.Options{ExtraRoots: []*x509.Certificate{next.Root}})
	a := startAgent(t, bin, mc.GRPCAddr, mc.RootPEM, agentConfig{Namespace: "default", ServiceAccount: "sleep",
		Token: mc.Token(t, "default", "sleep"), SecretTTL: time.Hour})
	a.watchCerts(t, 1, 30*time.Second)
	var roots []*x509.Certificate
	catest.Eventually(t, 10*time.Second, "root-cert.pem with both roots", func() error {
		b, err := os.ReadFile(a.out("root-cert.pem"))
		if err != nil {
			return err
		}
		if roots, err = parsePEMCerts(b); err != nil {
			return err
		}
		if len(roots) != 2 {
			return fmt.Errorf("root-cert.pem holds %d certificates", len(roots))
		}
		return nil
	})
	a.stop()
	has := func(c *x509.Certificate) bool { return roots[0].Equal(c) || roots[1].Equal(c) }
	if !has(mc.Root) || !has(next.Root) {
		t.Errorf("root-cert.pem holds %d certificates but not both the mesh root and the extra root "+
			"(mesh root present %v, extra root present %v)", len(roots), has(mc.Root), has(next.Root))
	}
}

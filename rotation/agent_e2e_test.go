package rotation_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// podAgent is Istio's real pilot-agent (Envoy disabled) for one pod, writing its key, chain and trust
// anchors to dir/out as a sidecar's Envoy would receive them over SDS.
type podAgent struct {
	name, id, dir string
	pid           int
}

func (a *podAgent) file(name string) string { return filepath.Join(a.dir, "out", name) }

// startPodAgent runs pilot-agent for pod name of service account sa in namespace default, with a bound token
// carrying the pod claims, asking for secretTTL certificates.
func startPodAgent(t *testing.T, bin string, m *catest.Meshca, caRoots []byte, sa, name string,
	secretTTL time.Duration) *podAgent {
	t.Helper()
	a := &podAgent{name: name, id: "spiffe://" + catest.TrustDomain + "/ns/default/sa/" + sa, dir: t.TempDir()}
	tok, err := m.Tokens.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: sa, PodName: name,
		PodUID: "uid-" + name, NodeName: "node-" + name, TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"var/run/secrets/tokens/istio-token": []byte(tok),
		"var/run/secrets/istio/root-cert.pem": caRoots, "out/.keep": nil, "etc/istio/proxy/.keep": nil}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(a.dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a.dir, p), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pc, _ := json.Marshal(map[string]any{"discoveryAddress": m.GRPCAddr, "statusPort": catest.FreePort(t)})
	logf, err := os.Create(filepath.Join(a.dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "proxy", "sidecar")
	cmd.Dir, cmd.Stdout, cmd.Stderr = a.dir, logf, logf
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + a.dir, "DISABLE_ENVOY=true", "OUTPUT_CERTS=./out",
		"CA_ADDR=" + m.GRPCAddr, "POD_NAMESPACE=default", "POD_NAME=" + name, "SERVICE_ACCOUNT=" + sa,
		"TRUST_DOMAIN=" + catest.TrustDomain, "ISTIO_META_CLUSTER_ID=Kubernetes", "SECRET_TTL=" + secretTTL.String(),
		"ECC_SIGNATURE_ALGORITHM=ECDSA", "PROXY_CONFIG=" + string(pc)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pilot-agent: %v", err)
	}
	a.pid = cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-a.pid, syscall.SIGCONT)
		_ = syscall.Kill(-a.pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(a.dir, "agent.log"))
			t.Logf("pilot-agent %s log:\n%.4000s", name, b)
		}
	})
	return a
}

// identity reads the agent's key and chain now, retrying while the agent is between writing the two files.
func (a *podAgent) identity() (*tls.Certificate, error) {
	var err error
	for range 20 {
		var chain, key []byte
		if chain, err = os.ReadFile(a.file("cert-chain.pem")); err == nil {
			if key, err = os.ReadFile(a.file("key.pem")); err == nil {
				var c tls.Certificate
				if c, err = tls.X509KeyPair(chain, key); err == nil {
					return &c, nil
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil, fmt.Errorf("pod %s: key and chain: %w", a.name, err)
}

// anchors reads the agent's root-cert.pem now.
func (a *podAgent) anchors() ([]*x509.Certificate, error) {
	b, err := os.ReadFile(a.file("root-cert.pem"))
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// mix is what one handshake saw: which root the presented leaf chains to, and which roots the verifying side
// trusted.
type mix struct{ leaf, bundle string }

// verifier checks a peer as Envoy does with the trust anchors the agent wrote: chain to a root of
// root-cert.pem read at this handshake, and the expected SPIFFE ID. It records the mix.
func verifier(a peer, wantID string, names func(*x509.Certificate) string,
	seen func(mix)) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		roots, err := a.anchors()
		if err != nil {
			return err
		}
		pool, inter := x509.NewCertPool(), x509.NewCertPool()
		var bundle []string
		for _, r := range roots {
			pool.AddCert(r)
			bundle = append(bundle, names(r))
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			if certs[i], err = x509.ParseCertificate(r); err != nil {
				return err
			}
			if i > 0 {
				inter.AddCert(certs[i])
			}
		}
		chains, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return err
		}
		if len(certs[0].URIs) != 1 || certs[0].URIs[0].String() != wantID {
			return fmt.Errorf("peer is %v, want %s", certs[0].URIs, wantID)
		}
		slices.Sort(bundle)
		seen(mix{leaf: names(chains[0][len(chains[0])-1]), bundle: strings.Join(bundle, "+")})
		return nil
	}
}

// mesh of holders: a TLS server per pod or ztunnel identity and clients between every pair, all re-reading the
// agents' files (or ztunnel's memory) on each handshake, without session resumption.
type podMesh struct {
	mu       sync.Mutex
	ok       int
	failures []error // handshakes and long-lived connections that failed
	verify   []error // verification failures on the server side
	mixes    map[mix]int
}

func (pm *podMesh) record(err error) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if err != nil {
		pm.failures = append(pm.failures, err)
		return
	}
	pm.ok++
}

func (pm *podMesh) seen(m mix) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	pm.mixes[m]++
}

// serverFor listens as pod a's Envoy would: mTLS, its current certificate, peers verified against its current
// anchors.
func (pm *podMesh) serverFor(t *testing.T, a peer, ids []string, names func(*x509.Certificate) string) string {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, SessionTicketsDisabled: true, ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return a.identity() },
		VerifyPeerCertificate: func(raw [][]byte, v [][]*x509.Certificate) error {
			var last error
			for _, id := range ids { // any pod of the mesh may call
				if last = verifier(a, id, names, pm.seen)(raw, v); last == nil {
					return nil
				}
			}
			pm.mu.Lock()
			pm.verify = append(pm.verify, last)
			pm.mu.Unlock()
			return last
		}}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { // echo until the client closes
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// dial connects as peer from's Envoy (or ztunnel) to the server of peer to.
func (pm *podMesh) dial(from, to peer, addr string, names func(*x509.Certificate) string) (*tls.Conn, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, // verified below, as Envoy does
		GetClientCertificate:  func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return from.identity() },
		VerifyPeerCertificate: verifier(from, to.spiffeID(), names, pm.seen)}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte("ping")); err != nil { // TLS 1.3: the client certificate is checked by now
		c.Close()
		return nil, err
	}
	buf := make([]byte, 4)
	if _, err := c.Read(buf); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

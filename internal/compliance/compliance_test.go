package compliance

import (
	"context"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// server is a real TLS listener on loopback with policy p applied; each accepted handshake's state or error
// is sent on done.
type server struct {
	addr string
	pool *x509.CertPool
	done chan result
}

type result struct {
	state tls.ConnectionState
	err   error
}

func startServer(t testing.TB, p Policy, h *Handshakes) *server {
	t.Helper()
	cert, pool, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.Clone(&tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert})
	h.Instrument(cfg, "test")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{addr: l.Addr().String(), pool: pool, done: make(chan result, 16)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				err := tc.Handshake() // done once the client's Finished is read and VerifyConnection ran
				s.done <- result{tc.ConnectionState(), err}
			}()
		}
	}()
	return s
}

// dial connects with cfg (RootCAs and ServerName filled in) and returns the client's view of the handshake.
func (s *server) dial(cfg *tls.Config) (tls.ConnectionState, error) {
	cfg = cfg.Clone()
	cfg.RootCAs, cfg.ServerName = s.pool, "self-test.meshca.invalid"
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", s.addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.ConnectionState(), nil
}

func mldsaClientCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := mldsa.GenerateKey(mldsa.MLDSA65())
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ml-dsa client"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.PublicKey(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestPoliciesAcceptAndRefuseClientsOverRealHandshakes(t *testing.T) {
	mlkem := tls.X25519MLKEM768
	clients := []struct {
		name string
		cfg  *tls.Config
		// want maps each policy to the group both sides must have negotiated; 0 means refused.
		want map[Policy]tls.CurveID
	}{
		{"the default Go client", &tls.Config{},
			map[Policy]tls.CurveID{None: mlkem, PQC: mlkem, FIPS1402: tls.CurveP256, FIPS1403: tls.CurveP256}},
		{"an ML-KEM-only client", &tls.Config{CurvePreferences: []tls.CurveID{mlkem}},
			map[Policy]tls.CurveID{None: mlkem, PQC: mlkem}},
		{"an X25519-only client", &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}},
			map[Policy]tls.CurveID{None: tls.X25519}},
		{"a P-256-only client", &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}},
			map[Policy]tls.CurveID{None: tls.CurveP256, FIPS1402: tls.CurveP256, FIPS1403: tls.CurveP256}},
		{"a TLS 1.2 client", &tls.Config{MaxVersion: tls.VersionTLS12},
			map[Policy]tls.CurveID{None: tls.X25519, FIPS1402: tls.CurveP256, FIPS1403: tls.CurveP256}},
		{"a client with an ML-DSA-65 certificate", &tls.Config{Certificates: []tls.Certificate{mldsaClientCert(t)}},
			map[Policy]tls.CurveID{None: mlkem, PQC: mlkem, FIPS1402: tls.CurveP256, FIPS1403: tls.CurveP256}},
	}
	for _, p := range Policies() {
		srv := startServer(t, p, nil)
		for _, c := range clients {
			t.Run(string(p)+"/"+c.name, func(t *testing.T) {
				want := c.want[p]
				st, cerr := srv.dial(c.cfg)
				got := <-srv.done
				if want == 0 {
					if cerr == nil && got.err == nil {
						t.Fatalf("policy %q accepted %s (group %s)", p, c.name, got.state.CurveID)
					}
					return
				}
				if cerr != nil || got.err != nil {
					t.Fatalf("policy %q refused %s: client: %v; server: %v", p, c.name, cerr, got.err)
				}
				if st.CurveID != want || got.state.CurveID != want {
					t.Errorf("group: client %s, server %s; want %s", st.CurveID, got.state.CurveID, want)
				}
				if err := p.Check(got.state); err != nil {
					t.Errorf("the server's state breaks its own policy: %v", err)
				}
				if len(c.cfg.Certificates) > 0 && p == PQC {
					if n := len(got.state.PeerCertificates); n == 0 ||
						got.state.PeerCertificates[0].PublicKeyAlgorithm != x509.MLDSA {
						t.Errorf("the server did not get the ML-DSA client certificate (%d certificates)", n)
					}
				}
			})
		}
	}
}

// chachaClientEnv makes the test binary act as a client preferring ChaCha20-Poly1305 (TestMain).
const chachaClientEnv = "MESHCA_TEST_CHACHA_CLIENT"

func TestMain(m *testing.M) {
	if addr := os.Getenv(chachaClientEnv); addr != "" {
		// GODEBUG=cpu.aes=off makes crypto/tls think there is no AES hardware: it then offers ChaCha20 first,
		// and a Go server follows that preference in TLS 1.3.
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err != nil {
			os.Exit(3)
		}
		_, err = c.Write([]byte{1})
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString(tls.CipherSuiteName(c.ConnectionState().CipherSuite))
		c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestAChaChaPreferringClientIsRefusedWhereTLS13SuitesMustBeAESGCM(t *testing.T) {
	for _, tc := range []struct {
		policy  Policy
		refused bool
	}{{None, false}, {PQC, true}, {FIPS1403, true}} {
		t.Run(string(tc.policy), func(t *testing.T) {
			srv := startServer(t, tc.policy, nil)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), chachaClientEnv+"="+srv.addr, "GODEBUG=cpu.aes=off")
			out, cerr := cmd.Output()
			got := <-srv.done
			if tc.refused {
				// In TLS 1.3 the client finishes first, so only the server knows it refused.
				if !errors.Is(got.err, ErrRefused) {
					t.Fatalf("accepted (client: %v %s; server: %v), want refused with ErrRefused", cerr, out, got.err)
				}
				return
			}
			if cerr != nil || got.err != nil {
				t.Fatalf("client: %v; server: %v", cerr, got.err)
			}
			if got.state.CipherSuite != tls.TLS_CHACHA20_POLY1305_SHA256 {
				t.Fatalf("negotiated %s: the client did not prefer ChaCha20, so this test proves nothing",
					tls.CipherSuiteName(got.state.CipherSuite))
			}
		})
	}
}

func TestSelfTestPassesForEveryPolicyEvenWithTLSMLKEMOff(t *testing.T) {
	for _, p := range Policies() {
		if err := p.SelfTest(context.Background()); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	if os.Getenv("GODEBUG") == "tlsmlkem=0" {
		return
	}
	// tlsmlkem=0 changes only crypto/tls's default groups; the explicit ones Apply sets still hold.
	cmd := exec.Command(os.Args[0], "-test.run=^TestSelfTestPassesForEveryPolicyEvenWithTLSMLKEMOff$")
	cmd.Env = append(os.Environ(), "GODEBUG=tlsmlkem=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("with GODEBUG=tlsmlkem=0: %v\n%s", err, out)
	}
}

func TestSelfTestFailsWhenAHandshakeCannotMeetThePolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy
		client func(*tls.Config)
	}{
		{"pqc without ML-KEM", PQC, func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.X25519} }},
		{"fips-140-3 with TLS 1.3 only on one side", FIPS1402, func(c *tls.Config) {
			c.MinVersion, c.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.policy.selfTest(context.Background(), tc.client); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("self-test: %v, want ErrUnavailable", err)
			}
		})
	}
}

func TestParseAndResolveNameTheKeyAndRefuseConflicts(t *testing.T) {
	for _, tc := range []struct {
		name              string
		configured, env   string
		want              Policy
		wantUnknownPolicy bool
	}{
		{"nothing set is Go's defaults", "", "", None, false},
		{"the environment alone applies", "", "pqc", PQC, false},
		{"the configuration alone applies", "fips-140-3", "", FIPS1403, false},
		{"both equal applies", "pqc", "pqc", PQC, false},
		{"both different is refused", "pqc", "fips-140-2", None, true},
		{"an unknown value is refused", "quantum", "", None, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(tc.configured, tc.env)
			if errors.Is(err, ErrUnknownPolicy) != tc.wantUnknownPolicy || got != tc.want {
				t.Fatalf("Resolve(%q, %q) = %q, %v", tc.configured, tc.env, got, err)
			}
		})
	}
}

func TestHandshakesAreCountedByGroupAndResult(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := NewHandshakes(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, PQC, h)
	if _, err := srv.dial(&tls.Config{}); err != nil {
		t.Fatal(err)
	}
	<-srv.done
	_, _ = srv.dial(&tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}})
	<-srv.done
	ok := testutil.ToFloat64(h.total.WithLabelValues("test", "TLS 1.3", "X25519MLKEM768", "ok"))
	if ok != 1 {
		t.Fatalf("ok handshakes with X25519MLKEM768 = %v, want 1", ok)
	}
}

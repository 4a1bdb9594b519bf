package main

import (
	"context"
	"crypto/mldsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr/composite"
	"github.com/meshca/meshca/internal/compliance"
	"github.com/meshca/meshca/internal/devtoken"
)

// pqcDev is serve --dev under COMPLIANCE_POLICY=pqc with a gRPC client that trusts the dev root.
type pqcDev struct {
	*devServer
	conn   *grpc.ClientConn
	minter *devtoken.Minter
}

func startPQCDev(t *testing.T) *pqcDev {
	t.Helper()
	t.Setenv(compliance.EnvVar, string(compliance.PQC))
	d := &pqcDev{devServer: startDev(t)}
	catest.Eventually(t, 30*time.Second, "serve --dev ready", func() error {
		resp, err := http.Get("http://" + d.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	roots := readPEMCerts(t, filepath.Join(d.dir, "cacerts", "root-cert.pem"))
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])
	tc := compliance.PQC.Clone(&tls.Config{RootCAs: pool, ServerName: "localhost"})
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	d.conn = conn
	if d.minter, err = devtoken.Load("", filepath.Join(d.dir, devtoken.KeyFile)); err != nil {
		t.Fatal(err)
	}
	return d
}

// issue sends csrPEM as default/<sa> and returns the chain.
func (d *pqcDev) issue(t *testing.T, sa string, csrPEM []byte) ([]*x509.Certificate, error) {
	t.Helper()
	tok, err := d.minter.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: sa, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := pb.NewIstioCertificateServiceClient(d.conn).CreateCertificate(ctx,
		&pb.IstioCertificateRequest{Csr: string(csrPEM), ValidityDuration: 3600})
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	for _, p := range resp.CertChain {
		certs, err := backends.ParseCertificates([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, certs...)
	}
	return chain, nil
}

func readPEMCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := backends.ParseCertificates(b)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func getRoots(t *testing.T, url string) []*x509.Certificate {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	certs, err := backends.ParseCertificates(b)
	if err != nil {
		t.Fatalf("%s: %v\n%s", url, err, b)
	}
	return certs
}

func mldsaCSR(t *testing.T, sa string) ([]byte, *mldsa.PrivateKey) {
	t.Helper()
	key, err := mldsa.GenerateKey(mldsa.MLDSA65())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := catest.CSR(t, catest.CSROptions{Key: key, URIs: []string{"spiffe://cluster.local/ns/default/sa/" + sa}})
	return p, key
}

// make run's dev mode issues ML-DSA-65 certificates from its own ML-DSA CA: they verify with crypto/x509 to
// /roots-mldsa.pem and with circl's ML-DSA, carry digitalSignature only, and the ML-DSA root never appears in
// /roots.pem; a classical CSR on the same server still gets the classical CA.
func TestDevModeIssuesMLDSACertificatesFromASeparatePKI(t *testing.T) {
	d := startPQCDev(t)
	csrPEM, _ := mldsaCSR(t, "sleep")
	chain, err := d.issue(t, "sleep", csrPEM)
	if err != nil {
		t.Fatalf("ML-DSA CSR: %v\nlog:\n%s", err, d.stderr.String())
	}
	leaf := chain[0]
	if leaf.PublicKeyAlgorithm != x509.MLDSA || leaf.SignatureAlgorithm != x509.MLDSA65 {
		t.Fatalf("leaf key %s signed with %s, want ML-DSA signed with ML-DSA-65", leaf.PublicKeyAlgorithm,
			leaf.SignatureAlgorithm)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %b, want digitalSignature only", leaf.KeyUsage)
	}
	pqRoots := getRoots(t, "http://"+d.httpAddr+"/roots-mldsa.pem")
	if last := chain[len(chain)-1]; !last.Equal(pqRoots[0]) {
		t.Errorf("the response ends with %q, want the ML-DSA root as the trust bundle", last.Subject)
	}
	pool, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range pqRoots {
		pool.AddCert(r)
	}
	for _, c := range chain[1:] {
		inters.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("crypto/x509 does not verify the ML-DSA chain to /roots-mldsa.pem: %v", err)
	}
	issuerKey := chain[1].PublicKey.(*mldsa.PublicKey)
	circlKey, err := composite.NewMLDSAPublicKey(composite.MLDSA65(), issuerKey.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := composite.VerifyMLDSA(circlKey, leaf.RawTBSCertificate, leaf.Signature, nil); err != nil {
		t.Fatalf("circl does not verify the leaf's ML-DSA signature: %v", err)
	}
	tampered := append([]byte(nil), leaf.RawTBSCertificate...)
	tampered[len(tampered)/2] ^= 1
	if composite.VerifyMLDSA(circlKey, tampered, leaf.Signature, nil) == nil {
		t.Fatal("circl verified a tampered certificate body")
	}
	for _, r := range getRoots(t, "http://"+d.httpAddr+"/roots.pem") {
		if r.PublicKeyAlgorithm == x509.MLDSA {
			t.Fatal("/roots.pem, which Envoy loads, holds the ML-DSA root")
		}
	}
	ecPEM, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/sleep")
	ecChain, err := d.issue(t, "sleep", ecPEM)
	if err != nil || ecChain[0].PublicKeyAlgorithm != x509.ECDSA || ecChain[1].PublicKeyAlgorithm == x509.MLDSA {
		t.Fatalf("classical CSR: %v (chain %v)", err, ecChain)
	}
}

// The identity rules hold for ML-DSA CSRs: another workload's identity is refused with PermissionDenied.
func TestMLDSACSRForAnotherIdentityIsRefused(t *testing.T) {
	d := startPQCDev(t)
	csrPEM, _ := mldsaCSR(t, "someone-else")
	if _, err := d.issue(t, "sleep", csrPEM); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ML-DSA CSR for someone else: %v, want PermissionDenied", err)
	}
}

// Two Go peers with meshca-issued ML-DSA certificates complete a mutual TLS 1.3 handshake under
// COMPLIANCE_POLICY=pqc, each verifying the other to the ML-DSA root.
func TestMutualTLSWithMeshcaIssuedMLDSACertificatesUnderPQC(t *testing.T) {
	d := startPQCDev(t)
	pool := x509.NewCertPool()
	for _, r := range getRoots(t, "http://"+d.httpAddr+"/roots-mldsa.pem") {
		pool.AddCert(r)
	}
	cert := func(sa string) tls.Certificate {
		csrPEM, key := mldsaCSR(t, sa)
		chain, err := d.issue(t, sa, csrPEM)
		if err != nil {
			t.Fatal(err)
		}
		c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
		for _, x := range chain[:len(chain)-1] {
			c.Certificate = append(c.Certificate, x.Raw)
		}
		return c
	}
	srvCfg := compliance.PQC.Clone(&tls.Config{Certificates: []tls.Certificate{cert("server")}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert})
	cliCfg := compliance.PQC.Clone(&tls.Config{Certificates: []tls.Certificate{cert("client")}, RootCAs: pool,
		// SPIFFE certificates carry no DNS name: verify the chain, then the peer's SPIFFE ID.
		InsecureSkipVerify: true, VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			certs := make([]*x509.Certificate, len(raw))
			inters := x509.NewCertPool()
			for i, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs[i] = c
				if i > 0 {
					inters.AddCert(c)
				}
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		}})
	l, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type accepted struct {
		conn *tls.Conn
		err  error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			acc <- accepted{nil, err}
			return
		}
		tc := c.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
		acc <- accepted{tc, tc.Handshake()}
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", l.Addr().String(), cliCfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer c.Close()
	got := <-acc
	if got.err != nil {
		t.Fatalf("server: %v", got.err)
	}
	defer got.conn.Close()
	s := got.conn
	ss, cs := s.ConnectionState(), c.ConnectionState()
	if ss.CurveID != tls.X25519MLKEM768 || cs.Version != tls.VersionTLS13 {
		t.Errorf("negotiated %s over %s", ss.CurveID, tls.VersionName(cs.Version))
	}
	if ss.PeerCertificates[0].PublicKeyAlgorithm != x509.MLDSA ||
		cs.PeerCertificates[0].PublicKeyAlgorithm != x509.MLDSA {
		t.Error("a peer did not present its ML-DSA certificate")
	}
}

package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/internal/devtoken"
)

// waitReady waits for d's /readyz.
func (d *devServer) waitReady(t *testing.T) {
	t.Helper()
	catest.Eventually(t, 20*time.Second, "meshca ready", func() error {
		resp, err := http.Get("http://" + d.httpAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz %d", resp.StatusCode)
		}
		return nil
	})
}

// shutdown stops d and waits for serve to return.
func (d *devServer) shutdown(t *testing.T) {
	t.Helper()
	d.stop()
	if code := <-d.done; code != 0 {
		t.Errorf("serve exited with %d\nlog:\n%s", code, d.stderr.String())
	}
}

// issued is a workload certificate with its key, as an agent holds it.
type issued struct {
	chain []*x509.Certificate
	key   crypto.Signer
}

// request asks d for a certificate for ns/sa: with a dev token, or, when renew is set, authenticated only by
// renew's certificate (client-certificate renewal over mTLS).
func (d *devServer) request(t *testing.T, ns, sa string, renew *issued) (*issued, error) {
	t.Helper()
	rootPEM, err := os.ReadFile(filepath.Join(d.dir, "cacerts", "root-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	tc := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if renew != nil {
		var raw [][]byte
		for _, c := range renew.chain[:len(renew.chain)-1] {
			raw = append(raw, c.Raw)
		}
		tc.Certificates = []tls.Certificate{{Certificate: raw, PrivateKey: renew.key}}
	} else {
		minter, err := devtoken.Load("", filepath.Join(d.dir, devtoken.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := minter.Mint(devtoken.Claims{Namespace: ns, ServiceAccount: sa})
		if err != nil {
			t.Fatal(err)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	csrPEM, key := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/"+ns+"/sa/"+sa)
	resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx,
		&pb.IstioCertificateRequest{Csr: string(csrPEM)})
	if err != nil {
		return nil, err
	}
	out := &issued{key: key}
	for _, p := range resp.CertChain {
		block, _ := pem.Decode([]byte(p))
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out.chain = append(out.chain, c)
	}
	return out, nil
}

// A revoked client certificate cannot renew (issue #15, item 2): revoked in the revocation state while meshca
// is down, it is refused with Unauthenticated after the restart, while a certificate nobody revoked renews.
func TestRevokedClientCertDoesNotRenew(t *testing.T) {
	dir := t.TempDir()
	d := startDevIn(t, dir)
	d.waitReady(t)
	victim, err := d.request(t, "default", "sleep", nil)
	if err != nil {
		t.Fatalf("CreateCertificate with a token: %v\nlog:\n%s", err, d.stderr.String())
	}
	other, err := d.request(t, "default", "other", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.request(t, "default", "sleep", victim); err != nil {
		t.Fatalf("renewal with an unrevoked certificate: %v", err)
	}
	d.shutdown(t)

	store, err := crl.OpenFile(filepath.Join(dir, "revocations.json"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := crl.NewRegistry(context.Background(), crl.RegistryConfig{Store: store,
		Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Revoke(context.Background(), crl.RevokeRequest{Certificate: victim.chain[0],
		Reason: crl.KeyCompromise}); err != nil {
		t.Fatal(err)
	}
	store.Close()

	d = startDevIn(t, dir)
	defer d.shutdown(t)
	d.waitReady(t)
	if _, err := d.request(t, "default", "sleep", victim); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("renewal with a revoked certificate: %v, want Unauthenticated", err)
	}
	if _, err := d.request(t, "default", "other", other); err != nil {
		t.Fatalf("renewal with an unrevoked certificate after the restart: %v", err)
	}
}

// get fetches path from d's HTTP port.
func (d *devServer) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + d.httpAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// make run's serve --dev publishes a current CRL for every CA of its chain, the intermediate's signed by
// meshca and the root's from the ca-crl.pem meshca init wrote: what Envoy's CRL_CHECK_ALL needs.
func TestDevServesACRLForEveryCAOfTheChain(t *testing.T) {
	d := startDev(t)
	defer d.shutdown(t)
	d.waitReady(t)
	code, body := d.get(t, "/crl.pem")
	if code != http.StatusOK {
		t.Fatalf("/crl.pem: %d %s", code, body)
	}
	lists, err := crl.ParseBundle(body)
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(filepath.Join(d.dir, "cacerts", "cert-chain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := backends.ParseCertificates(g)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || len(lists) != 2 {
		t.Fatalf("%d CAs, %d CRLs; want 2 and 2", len(chain), len(lists))
	}
	if _, err := crl.Check(crl.CAs(chain), lists, time.Now()); err != nil {
		t.Fatalf("the published CRLs do not cover the chain: %v", err)
	}
	code, der := d.get(t, "/crl")
	if code != http.StatusOK {
		t.Fatalf("/crl: %d", code)
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil || !crl.Matches(l, chain[0]) {
		t.Fatalf("/crl is not the intermediate's CRL: %v", err)
	}
}

// A root CRL past its nextUpdate is not served as if it were good: /crl.pem answers 503, the gauges show it,
// and the log says which CA lacks a current CRL.
func TestAStaleCRLIsNotServedSilently(t *testing.T) {
	dir := t.TempDir()
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WriteDir(filepath.Join(dir, "cacerts")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(3),
		ThisUpdate: now.Add(-48 * time.Hour), NextUpdate: now.Add(-time.Hour)}, g.Root, g.RootKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "cacerts", file.CRLFile), string(crl.EncodeBundle(der)))
	d := startDevIn(t, dir)
	defer d.shutdown(t)
	d.waitReady(t)
	if code, body := d.get(t, "/crl.pem"); code != http.StatusServiceUnavailable ||
		!strings.Contains(string(body), crl.ErrStaleCRL.Error()) {
		t.Fatalf("/crl.pem: %d %q; want 503 naming the stale CRL", code, body)
	}
	_, metrics := d.get(t, "/metrics")
	root := string(crl.IDOf(g.Root))
	for _, want := range []string{"meshca_crl_coverage_complete 0",
		fmt.Sprintf(`meshca_crl_next_update_timestamp_seconds{ca=%q} %g`, root, float64(now.Add(-time.Hour).Unix()))} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !regexp.MustCompile(`meshca_crl_publish_errors_total{target="coverage"} [1-9]`).Match(metrics) {
		t.Error("/metrics does not count the coverage error")
	}
	if log := d.stderr.String(); !strings.Contains(log, "not every CA of the served chains has a valid CRL") ||
		!strings.Contains(log, crl.ErrStaleCRL.Error()) {
		t.Errorf("the log does not report the stale CRL:\n%s", log)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// serve --dev tracks the expiry of every identity it issues to: after one issuance, /metrics carries the
// identity's expiry timestamp (what make run shows a newcomer), beside its own serving certificate's expiry and
// the scanned dev CA files; meshca inspect --url reads it.
func TestServeExportsPerIdentityExpiry(t *testing.T) {
	d := startDev(t)
	defer func() { d.stop(); <-d.done }()
	dir, grpcAddr, httpAddr, stderr := d.dir, d.grpcAddr, d.httpAddr, d.stderr
	catest.Eventually(t, 20*time.Second, "meshca ready", func() error {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz %d", resp.StatusCode)
		}
		return nil
	})
	rootPEM, err := os.ReadFile(filepath.Join(dir, "cacerts", "root-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	minter, err := devtoken.Load("", filepath.Join(dir, devtoken.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := minter.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/sleep")
	cctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization",
		"Bearer "+tok),
		10*time.Second)
	defer cancel()
	if _, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(cctx,
		&pb.IstioCertificateRequest{Csr: string(csrPEM)}); err != nil {
		t.Fatalf("CreateCertificate: %v\nlog:\n%s", err, stderr.String())
	}
	for _, want := range []string{
		`meshca_identity_certificate_expiry_timestamp_seconds{namespace="default",service_account="sleep",` +
			`trust_domain="cluster.local"}`,
		"meshca_serving_certificate_expiry_timestamp_seconds ",
		`meshca_scanned_certificate_expiry_timestamp_seconds{ca="true",key="root-cert.pem",name="` +
			filepath.Join(dir, "cacerts") + `"`,
	} {
		catest.Eventually(t, 10*time.Second, "/metrics with "+want, func() error {
			resp, err := http.Get("http://" + httpAddr + "/metrics")
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), want) {
				return fmt.Errorf("/metrics lacks %s", want)
			}
			return nil
		})
	}
	// meshca inspect against the running server reads its /roots.pem: the dev root is far from expiry.
	var stdout, errOut bytes.Buffer
	if code := runNoPanic(t, []string{"inspect", "--url", "http://" + httpAddr}, &stdout, &errOut); code != 0 ||
		!strings.Contains(stdout.String(), "CN=cluster.local root CA") {
		t.Errorf("inspect --url exit %d, want 0 and the dev root:\n%s%s", code, stdout.String(), errOut.String())
	}
}

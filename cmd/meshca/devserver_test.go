package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca/catest"
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

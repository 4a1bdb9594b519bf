package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// tokenIssuer returns a token minter and writes the JWKS that verifies its tokens to dir.
func tokenIssuer(t *testing.T, dir string) (*devtoken.Minter, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m, err := devtoken.New("https://issuer.example", key)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: key.Public(), Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	data, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "jwks.json")
	writeFile(t, p, string(data))
	return m, p
}

// TestServeSwitchesTheCAThroughARotation runs `meshca serve --config` with backends[].file.nextDir and a
// rotation state file, and drives a rotation with the `meshca rotation` commands while a workload renews over
// gRPC: nobody touches cacerts; leaves come from the old CA until activated, from the CA of nextDir after,
// from the old one again after a rollback, and from the new one through retiring and idle.
func TestServeSwitchesTheCAThroughARotation(t *testing.T) {
	dir := t.TempDir()
	oldCA, newCA := caInto(t, dir, "cacerts"), caInto(t, dir, "cacerts-next")
	cacertsKey, err := os.ReadFile(filepath.Join(dir, "cacerts", file.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	minter, jwks := tokenIssuer(t, dir)
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t))
	tokenFile := filepath.Join(dir, "admin-token")
	config := filepath.Join(dir, "config.yaml")
	// Leaves of 4s: the gates wait for one maximum lifetime after the start and for every holder to renew.
	writeFile(t, config, fmt.Sprintf(`
allowShortTTLs: true
issuance: {trustDomain: cluster.local, defaultTTL: 4s, minTTL: 1s, maxTTL: 4s}
server: {grpcAddr: %q, httpAddr: "127.0.0.1:%d", ipAddresses: ["127.0.0.1"]}
authn: {issuers: [{issuer: "https://issuer.example", jwksFile: %q}]}
adminTokenFile: %q
rotation: {stateFile: %q, adminAddr: %q, pollInterval: 100ms, manual: true}
backends:
  - name: cacerts
    file: {dir: %q, nextDir: %q, reloadInterval: 100ms}
`, grpcAddr, catest.FreePort(t), jwks, tokenFile, filepath.Join(dir, "rotation.json"), adminAddr,
		filepath.Join(dir, "cacerts"), filepath.Join(dir, "cacerts-next")))
	serveConfig(t, config)

	pool := x509.NewCertPool()
	pool.AddCert(oldCA.Root)
	pool.AddCert(newCA.Root) // the serving certificate may be renewed by the new CA
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// renew gets the workload a certificate and returns the CA it came from.
	renew := func() (*file.Generated, error) {
		tok, err := minter.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "app"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(),
			"authorization", "Bearer "+tok), 5*time.Second)
		defer cancel()
		csrPEM, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/app")
		resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx,
			&pb.IstioCertificateRequest{Csr: string(csrPEM)})
		if err != nil {
			return nil, err
		}
		chain := parseChain(t, resp.CertChain)
		for _, g := range []*file.Generated{oldCA, newCA} {
			if chain[1].Equal(g.Intermediate) {
				return g, nil
			}
		}
		return nil, fmt.Errorf("a leaf from neither CA")
	}
	name := map[*file.Generated]string{oldCA: "the old CA", newCA: "the new CA"}
	expect := func(when string, want *file.Generated) {
		t.Helper()
		got, err := renew()
		if err != nil || got != want {
			t.Fatalf("%s: a leaf from %s (%v); want %s", when, name[got], err, name[want])
		}
	}
	// rotation runs `meshca rotation ARGS...` until it exits 0 (a closed gate exits 3), renewing the workload
	// before each try so that it holds what the gate waits for; it returns the output.
	rotation := func(args ...string) string {
		t.Helper()
		var out string
		catest.Eventually(t, 30*time.Second, "meshca rotation "+strings.Join(args, " "), func() error {
			_, _ = renew()
			var stdout, stderr bytes.Buffer
			all := append([]string{"rotation", "--admin-addr", adminAddr, "--admin-token-file", tokenFile}, args...)
			if code := runNoPanic(t, all, &stdout, &stderr); code != 0 {
				return fmt.Errorf("exit %d: %s", code, stderr.String())
			}
			out = stdout.String()
			return nil
		})
		return out
	}
	catest.Eventually(t, 20*time.Second, "meshca serving", func() error { _, err := renew(); return err })
	expect("before the rotation", oldCA)
	if out := rotation("plan"); !strings.Contains(out, "meshca signs with the next CA") {
		t.Fatalf("plan does not say that meshca switches the CA:\n%s", out)
	}
	for _, step := range []struct {
		args   []string
		out    string
		signer *file.Generated
	}{
		{[]string{"start", "--max-leaf-lifetime", "0", "--reason", "test"}, "idle → staged", oldCA},
		{[]string{"advance"}, "staged → publishing", oldCA},
		{[]string{"advance"}, "publishing → activated", newCA},
		{[]string{"rollback"}, "activated → publishing", oldCA},
		{[]string{"advance"}, "publishing → activated", newCA},
		{[]string{"advance"}, "activated → retiring", newCA},
		{[]string{"advance"}, "retiring → idle", newCA},
	} {
		if out := rotation(step.args...); !strings.Contains(out, step.out) {
			t.Fatalf("meshca rotation %s: %q, want %q", strings.Join(step.args, " "), out, step.out)
		}
		expect("after "+step.out, step.signer)
	}
	if key, err := os.ReadFile(filepath.Join(dir, "cacerts", file.CAKeyFile)); err != nil ||
		!bytes.Equal(key, cacertsKey) {
		t.Fatal("cacerts changed during the rotation")
	}
}

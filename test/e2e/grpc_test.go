package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/test/meshcatest"
)

// dial connects to mc's gRPC endpoint over TLS, trusting only the mesh root, as istio-agent does.
func dial(tb testing.TB, mc *meshcatest.CA) pb.IstioCertificateServiceClient {
	tb.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(mc.Root)
	conn, err := grpc.NewClient("passthrough:///"+mc.GRPCAddr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})))
	if err != nil {
		tb.Fatalf("dialing meshca: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	return pb.NewIstioCertificateServiceClient(conn)
}

func csrFor(tb testing.TB, key crypto.Signer, id string) []byte {
	tb.Helper()
	u, err := url.Parse(id)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		tb.Fatalf("creating CSR: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestIssuedCertificateIsAnX509SVID asks meshca over gRPC+TLS, as a workload would, for each key type its
// policy accepts, and checks the answer with go-spiffe's X.509-SVID verifier against a bundle of the mesh root.
// It needs no external binary, so it also runs under -short.
func TestIssuedCertificateIsAnX509SVID(t *testing.T) {
	mc := meshcatest.Start(t, meshcatest.Options{})
	client := dial(t, mc)
	const ns, sa = "payments", "ledger"
	wantID := "spiffe://cluster.local/ns/" + ns + "/sa/" + sa
	for _, tc := range []struct {
		name string
		key  func() (crypto.Signer, error)
	}{
		{"RSA-2048", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }},
		{"ECDSA P-256", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
		{"ECDSA P-384", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) }},
		{"Ed25519", func() (crypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := tc.key()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+mc.Token(t, ns, sa),
				"clusterid", authn.DefaultClusterID)
			resp, err := client.CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: string(csrFor(t, key, wantID)),
				ValidityDuration: 3600})
			if err != nil {
				t.Fatalf("CreateCertificate: %v", err)
			}
			if len(resp.GetCertChain()) < 2 {
				t.Fatalf("cert_chain has %d element(s), want at least 2", len(resp.GetCertChain()))
			}
			var chain []*x509.Certificate
			for n, p := range resp.GetCertChain() {
				certs, err := parsePEMCerts([]byte(p))
				if err != nil || len(certs) != 1 {
					t.Fatalf("cert_chain[%d] is not one PEM certificate (%d, %v)", n, len(certs), err)
				}
				chain = append(chain, certs[0])
			}
			verifySVID(t, mc.Root, chain, wantID)
			verifyChain(t, mc.Root, chain, wantID)
			if pub, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok ||
				!pub.Equal(key.Public()) {
				t.Error("leaf does not certify the CSR's key")
			}
		})
	}
}

package server_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"testing"

	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
)

// pemCerts parses every PEM block of s as a certificate.
func pemCerts(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("trailing bytes after the PEM blocks: %q", rest)
	}
	return out
}

// TestResponseCarriesTheWholeTrustBundle: istio-agent and ztunnel take the mesh's trust anchors only from the
// last element of the response, so it must hold every root of every backend (as istiod sends its whole
// bundle), byte-stable between responses; every other element is exactly one certificate.
func TestResponseCarriesTheWholeTrustBundle(t *testing.T) {
	dirA, genA := catest.FileCA(t)
	dirB, genB := catest.FileCA(t)
	m := catest.StartMeshca(t, catest.MeshcaOptions{Backends: []ca.NamedBackend{
		{Name: "a", Backend: catest.FileBackend(t, dirA, nil)},
		{Name: "b", Backend: catest.FileBackend(t, dirB, nil)},
	}})
	conn := m.Dial(t)
	var last []string
	for range 2 {
		csrPEM, _ := catest.WorkloadCSR(t, sleepID)
		resp, err := call(t, conn, m.Token(t, "default", "sleep"), &pb.IstioCertificateRequest{Csr: string(csrPEM)})
		if err != nil {
			t.Fatal(err)
		}
		chain := resp.GetCertChain()
		if len(chain) < 2 {
			t.Fatalf("chain has %d elements", len(chain))
		}
		for n, el := range chain[:len(chain)-1] {
			if got := len(pemCerts(t, el)); got != 1 {
				t.Errorf("element %d holds %d certificates, want 1", n, got)
			}
		}
		bundle := pemCerts(t, chain[len(chain)-1])
		if len(bundle) != 2 || !bundle[0].Equal(genA.Root) || !bundle[1].Equal(genB.Root) {
			t.Fatalf("last element holds %d certificates; want backend a's root then backend b's", len(bundle))
		}
		last = append(last, chain[len(chain)-1])
	}
	if last[0] != last[1] {
		t.Error("the trust bundle's bytes changed between two responses with the same roots")
	}
}

package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr/composite"
)

// independentVerify checks an id-MLDSA65-ECDSA-P256-SHA512 signature without csr/composite, from the draft's
// formula: M' = Prefix || Label || len(ctx)=0 || SHA-512(msg); ML-DSA-65 (circl) over M' with the Label as
// context, ECDSA P-256 (crypto/ecdsa) over SHA-256(M'). TestIndependentVerifierMatchesTheDraftVectors ties it
// to the draft's test vectors.
func independentVerify(pk, msg, sig []byte) bool {
	const label = "COMPSIG-MLDSA65-ECDSA-P256-SHA512"
	if len(pk) != mldsa65.PublicKeySize+65 || len(sig) <= mldsa65.SignatureSize {
		return false
	}
	ph := sha512.Sum512(msg)
	mp := append([]byte("CompositeAlgorithmSignatures2025"+label+"\x00"), ph[:]...)
	var mpk mldsa65.PublicKey
	if mpk.UnmarshalBinary(pk[:mldsa65.PublicKeySize]) != nil ||
		!mldsa65.Verify(&mpk, mp, []byte(label), sig[:mldsa65.SignatureSize]) {
		return false
	}
	ec, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pk[mldsa65.PublicKeySize:])
	digest := sha256.Sum256(mp)
	return err == nil && ecdsa.VerifyASN1(ec, digest[:], sig[mldsa65.SignatureSize:])
}

// TestIndependentVerifierMatchesTheDraftVectors: the draft's id-MLDSA65-ECDSA-P256-SHA512 vector (signature
// and self-signed x5c) passes independentVerify, and fails it after one flipped bit.
func TestIndependentVerifierMatchesTheDraftVectors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "csr", "composite", "testdata", "composite-sigs-testvectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		M     []byte `json:"m"`
		Tests []struct {
			TcID       string `json:"tcId"`
			PK, X5C, S []byte
		} `json:"tests"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Tests {
		if v.TcID != "id-MLDSA65-ECDSA-P256-SHA512" {
			continue
		}
		x5c, err := x509.ParseCertificate(v.X5C)
		if err != nil {
			t.Fatal(err)
		}
		if !independentVerify(v.PK, f.M, v.S) || !independentVerify(v.PK, x5c.RawTBSCertificate, x5c.Signature) {
			t.Fatal("the draft's vector does not verify")
		}
		flipped := append([]byte(nil), v.S...)
		flipped[len(flipped)/2] ^= 1
		if independentVerify(v.PK, f.M, flipped) {
			t.Fatal("a flipped bit in the vector's signature verifies")
		}
		return
	}
	t.Fatal("no id-MLDSA65-ECDSA-P256-SHA512 vector")
}

// Through the gRPC API: a composite CSR gets [leaf, composite intermediate, composite roots]; the chain
// verifies with composite.VerifyChain to /roots-composite.pem and, link by link, with independentVerify; the
// last element is exactly /roots-composite.pem, which /roots.pem never includes.
func TestCompositeCSRGetsACompositeChainOverGRPC(t *testing.T) {
	b, g := catest.CompositeFileBackend(t, nil)
	m := catest.StartMeshca(t, catest.MeshcaOptions{Backends: []ca.NamedBackend{{Name: "file", Backend: b}},
		Policy: &ca.Policy{TrustDomain: catest.TrustDomain, ExperimentalComposite: true}})
	csrPEM, key := catest.CSR(t, catest.CSROptions{Key: catest.CompositeKey(t), URIs: []string{sleepID}})
	resp, err := call(t, m.Dial(t), m.Token(t, "default", "sleep"), &pb.IstioCertificateRequest{Csr: string(csrPEM),
		ValidityDuration: 3600})
	if err != nil {
		t.Fatal(err)
	}
	var chain []*x509.Certificate
	for _, el := range resp.GetCertChain() {
		chain = append(chain, pemCerts(t, el)...)
	}
	roots := httpRoots(t, m, "/roots-composite.pem", http.StatusOK)
	if len(roots) != 1 || !roots[0].Equal(g.Root) || len(chain) != 3 || !chain[2].Equal(g.Root) {
		t.Fatalf("chain of %d ending %v; /roots-composite.pem %v: want the composite root", len(chain),
			chain[len(chain)-1].Subject, roots)
	}
	if err := composite.VerifyChain(chain, roots, time.Now()); err != nil {
		t.Fatalf("composite.VerifyChain: %v", err)
	}
	if !backends.SameKey(backends.CertificateKey(chain[0]), key.Public()) || chain[0].IsCA ||
		chain[0].KeyUsage != x509.KeyUsageDigitalSignature || len(chain[0].URIs) != 1 ||
		chain[0].URIs[0].String() != sleepID || chain[0].NotAfter.After(chain[1].NotAfter) {
		t.Errorf("leaf: key %T, IsCA %v, keyUsage %b, URIs %v", backends.CertificateKey(chain[0]), chain[0].IsCA,
			chain[0].KeyUsage, chain[0].URIs)
	}
	for n, c := range chain[:2] {
		issuer := backends.CertificateKey(chain[n+1]).(*composite.PublicKey)
		if !independentVerify(issuer.Bytes(), c.RawTBSCertificate, c.Signature) {
			t.Errorf("certificate %d does not verify with the independent, vector-checked verifier", n)
		}
	}
	for _, r := range httpRoots(t, m, "/roots.pem", http.StatusOK) {
		if backends.IsComposite(r) {
			t.Error("/roots.pem, which Envoy loads, holds the composite root")
		}
	}
}

// Without a composite CA a composite CSR is refused with InvalidArgument (istio-agent does not retry it),
// counted as key_policy and audited; /roots-composite.pem answers 404.
func TestCompositeCSRWithoutACompositeCAIsRefusedOverGRPC(t *testing.T) {
	var logs catest.SyncBuffer
	m := catest.StartMeshca(t, catest.MeshcaOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Policy: &ca.Policy{TrustDomain: catest.TrustDomain, ExperimentalComposite: true}})
	csrPEM, _ := catest.CSR(t, catest.CSROptions{Key: catest.CompositeKey(t), URIs: []string{sleepID}})
	before := metricValue(t, m, "meshca_csr_requests_total", "reason", "key_policy")
	_, err := call(t, m.Dial(t), m.Token(t, "default", "sleep"), &pb.IstioCertificateRequest{Csr: string(csrPEM)})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "compositeDir") {
		t.Fatalf("got %v, want InvalidArgument naming compositeDir", err)
	}
	if got := metricValue(t, m, "meshca_csr_requests_total", "reason", "key_policy") - before; got != 1 {
		t.Errorf("meshca_csr_requests_total{reason=key_policy} grew by %v, want 1", got)
	}
	var audited bool
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["reason"] == "key_policy" &&
			rec["outcome"] == ca.OutcomeRejected && rec["key_type"] == "MLDSA65-ECDSA-P256" {
			audited = true
		}
	}
	if !audited {
		t.Errorf("no audit record of the refused composite CSR:\n%s", logs.String())
	}
	httpRoots(t, m, "/roots-composite.pem", http.StatusNotFound)
}

// httpRoots fetches path from m's HTTP port, expects status want, and parses the roots of a 200.
func httpRoots(t *testing.T, m *catest.Meshca, path string, want int) []*x509.Certificate {
	t.Helper()
	resp, err := http.Get("http://" + m.HTTPAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s: status %d, want %d: %s", path, resp.StatusCode, want, body)
	}
	if want != http.StatusOK {
		return nil
	}
	return pemCerts(t, string(body))
}

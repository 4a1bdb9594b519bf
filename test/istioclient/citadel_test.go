package istioclient

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"istio.io/istio/pkg/security"
	"istio.io/istio/security/pkg/credentialfetcher/plugin"
	"istio.io/istio/security/pkg/nodeagent/caclient/providers/citadel"
	pkiutil "istio.io/istio/security/pkg/pki/util"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
	"github.com/meshca/meshca/test/meshcatest"
)

const ns, sa = "default", "sleep"

var wantID = "spiffe://" + meshcatest.TrustDomain + "/ns/" + ns + "/sa/" + sa

// clientConfig says how a citadel client authenticates: a token (written to a file Istio's token plugin
// reads) and/or a client certificate (key and chain files), as istio-agent does.
type clientConfig struct {
	token             string
	keyFile, certFile string
	certSigner        string // ISTIO_META_CERT_SIGNER
}

// newClient builds Istio's CA client for mc, trusting the mesh root from a file as istio-agent does.
func newClient(tb testing.TB, mc *meshcatest.CA, cfg clientConfig) *citadel.CitadelClient {
	tb.Helper()
	dir := tb.TempDir()
	root := filepath.Join(dir, "root-cert.pem")
	mc.WriteRoot(tb, root)
	opts := &security.Options{CAEndpoint: mc.GRPCAddr, ClusterID: authn.DefaultClusterID,
		CertSigner: cfg.certSigner}
	if cfg.token != "" {
		tok := filepath.Join(dir, "istio-token")
		if err := os.WriteFile(tok, []byte(cfg.token), 0o600); err != nil {
			tb.Fatal(err)
		}
		opts.CredFetcher = plugin.CreateTokenPlugin(tok)
	}
	c, err := citadel.NewCitadelClient(opts, &citadel.TLSOptions{RootCert: root, Key: cfg.keyFile, Cert: cfg.certFile})
	if err != nil {
		tb.Fatalf("citadel.NewCitadelClient: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// genCSR makes a CSR for host exactly as istio-agent's secret cache does.
func genCSR(tb testing.TB, host string, ecdsa bool) (csrPEM, keyPEM []byte) {
	tb.Helper()
	opts := pkiutil.CertOptions{Host: host, RSAKeySize: 2048}
	if ecdsa {
		opts.ECSigAlg, opts.ECCCurve = pkiutil.EcdsaSigAlg, pkiutil.P256Curve
	}
	csrPEM, keyPEM, err := pkiutil.GenCSR(opts)
	if err != nil {
		tb.Fatalf("pkiutil.GenCSR: %v", err)
	}
	return csrPEM, keyPEM
}

// checkChain asserts what istio-agent relies on and what meshca promises: at least [leaf, root], one PEM
// certificate per element, root last, verifying (Istio's own verifier and crypto/x509) to the mesh root with
// exactly wantID, for the key in keyPEM and about ttl of life, with the profile of a workload certificate: not a
// CA, no subject CN, digitalSignature (and keyEncipherment for RSA keys), serverAuth and clientAuth.
func checkChain(tb testing.TB, mc *meshcatest.CA, chain []string, keyPEM []byte, isRSA bool,
	ttl time.Duration) *x509.Certificate {
	tb.Helper()
	if len(chain) < 2 {
		tb.Fatalf("cert chain has %d element(s), want at least 2", len(chain))
	}
	var certs []*x509.Certificate
	for n, p := range chain {
		c, _, err := pkiutil.ParsePemEncodedCertificateChain([]byte(p))
		if err != nil || len(c) != 1 {
			tb.Fatalf("chain[%d] is not exactly one PEM certificate: %d, %v", n, len(c), err)
		}
		certs = append(certs, c[0])
	}
	if !certs[len(certs)-1].Equal(mc.Root) {
		tb.Error("the chain does not end with the mesh root")
	}
	joined := []byte(strings.Join(chain, ""))
	ku := x509.KeyUsageDigitalSignature
	if isRSA {
		ku |= x509.KeyUsageKeyEncipherment
	}
	want := &pkiutil.VerifyFields{Host: wantID, KeyUsage: ku, IsCA: false, Org: meshcatest.TrustDomain,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	if err := pkiutil.VerifyCertificate(keyPEM, joined, mc.RootPEM, want); err != nil {
		tb.Errorf("pkiutil.VerifyCertificate: %v", err)
	}
	leaf := certs[0]
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(mc.Root)
	for _, c := range certs[1:] {
		inters.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}); err != nil {
		tb.Errorf("leaf does not verify to the mesh root: %v", err)
	}
	ids, err := pkiutil.ExtractIDs(leaf.Extensions)
	if err != nil || !slices.Equal(ids, []string{wantID}) {
		tb.Errorf("leaf identities = %v (%v), want exactly [%s]", ids, err, wantID)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		tb.Errorf("leaf has extra SANs: DNS %v IP %v email %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if left := time.Until(leaf.NotAfter); left > ttl || left < ttl-time.Minute {
		tb.Errorf("leaf expires in %s, want the requested %s", left.Round(time.Second), ttl)
	}
	return leaf
}

// TestCitadelClientObtainsCertificate: Istio's CA client, with a CSR from Istio's pkiutil and a
// service-account token, gets a correctly scoped certificate for RSA-2048 and ECDSA P-256 keys.
func TestCitadelClientObtainsCertificate(t *testing.T) {
	mc := meshcatest.Start(t, meshcatest.Options{})
	client := newClient(t, mc, clientConfig{token: mc.Token(t, ns, sa)})
	for _, tc := range []struct {
		name    string
		ecdsa   bool
		keyType string
	}{
		{"RSA-2048 key (istio-agent's default)", false, "RSA-2048"},
		{"ECDSA P-256 key (ECC_SIGNATURE_ALGORITHM=ECDSA)", true, "ECDSA-P256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csrPEM, keyPEM := genCSR(t, wantID, tc.ecdsa)
			chain, err := client.CSRSign(csrPEM, 3600)
			if err != nil {
				t.Fatalf("CSRSign: %v", err)
			}
			checkChain(t, mc, chain, keyPEM, !tc.ecdsa, time.Hour)
			if got := mc.Counter(t, "meshca_certificates_issued_total",
				map[string]string{"key_type": tc.keyType}); got != 1 {
				t.Errorf("meshca_certificates_issued_total{key_type=%q} = %v, want 1", tc.keyType, got)
			}
		})
	}
}

// TestCitadelClientRenewsWithItsCertificate: with no token, Istio's client presents the certificate it was
// issued (TLSOptions Key/Cert, as istio-agent does for VM-style renewals) and meshca renews exactly that
// identity, authenticated by the client certificate.
func TestCitadelClientRenewsWithItsCertificate(t *testing.T) {
	mc := meshcatest.Start(t, meshcatest.Options{})
	csrPEM, keyPEM := genCSR(t, wantID, true)
	chain, err := newClient(t, mc, clientConfig{token: mc.Token(t, ns, sa)}).CSRSign(csrPEM, 3600)
	if err != nil {
		t.Fatalf("first CSRSign with a token: %v", err)
	}
	dir := t.TempDir()
	keyFile, certFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert-chain.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, []byte(strings.Join(chain, "")), 0o644); err != nil {
		t.Fatal(err)
	}

	renewer := newClient(t, mc, clientConfig{keyFile: keyFile, certFile: certFile})
	csrPEM, keyPEM = genCSR(t, wantID, true)
	renewed, err := renewer.CSRSign(csrPEM, 3600)
	if err != nil {
		t.Fatalf("renewal CSRSign with the client certificate: %v", err)
	}
	checkChain(t, mc, renewed, keyPEM, false, time.Hour)
	var methods []string
	for _, r := range mc.Audit() {
		if r.Attrs["outcome"] == "issued" {
			methods = append(methods, r.Attrs["authn"])
		}
	}
	if !slices.Equal(methods, []string{"jwt", "client-cert"}) {
		t.Errorf("issuances authenticated by %v, want [jwt client-cert]", methods)
	}
}

// codeRE finds the gRPC code in a CitadelClient error: it wraps the status with %v ("create certificate:
// rpc error: code = PermissionDenied desc = ..."), so status.Code cannot see it.
var codeRE = regexp.MustCompile(`rpc error: code = (\w+) desc`)

func codeOf(tb testing.TB, err error) codes.Code {
	tb.Helper()
	m := codeRE.FindStringSubmatch(err.Error())
	if m == nil {
		tb.Fatalf("no gRPC status in %q", err)
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == m[1] {
			return c
		}
	}
	tb.Fatalf("unknown gRPC code %q in %q", m[1], err)
	return 0
}

// TestCitadelClientRefusals: for each refused request Istio's client gets the gRPC code that makes
// istio-agent give up (rather than retry), no certificate, and meshca sees the request exactly once.
func TestCitadelClientRefusals(t *testing.T) {
	mc := meshcatest.Start(t, meshcatest.Options{})
	mint := func(c devtoken.Claims) string {
		t.Helper()
		tok, err := mc.Tokens.Mint(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	goodCSR := func(t *testing.T) []byte { csrPEM, _ := genCSR(t, wantID, true); return csrPEM }
	for _, tc := range []struct {
		name   string
		token  string
		csr    func(t *testing.T) []byte
		want   codes.Code
		reason string
	}{
		{"a token for another service account", mint(devtoken.Claims{Namespace: ns, ServiceAccount: "other"}), goodCSR,
			codes.PermissionDenied, "identity_mismatch"},
		{"a CSR for another namespace", mc.Token(t, ns, sa), func(t *testing.T) []byte {
			csrPEM, _ := genCSR(t, "spiffe://cluster.local/ns/kube-system/sa/"+sa, false)
			return csrPEM
		}, codes.PermissionDenied, "identity_mismatch"},
		{"no credentials at all", "", goodCSR, codes.Unauthenticated, "unauthenticated"},
		{"an expired token",
			mint(devtoken.Claims{Namespace: ns, ServiceAccount: sa, IssuedAt: time.Now().Add(-2 * time.Hour)}),
			goodCSR, codes.Unauthenticated, "unauthenticated"},
		{"a token for another audience",
			mint(devtoken.Claims{Namespace: ns, ServiceAccount: sa, Audiences: []string{"vault"}}),
			goodCSR, codes.Unauthenticated, "unauthenticated"},
		{"a garbage CSR", mc.Token(t, ns, sa), func(*testing.T) []byte {
			return []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
		},
			codes.InvalidArgument, "invalid_csr"},
		{"an RSA-1024 key", mc.Token(t, ns, sa), func(t *testing.T) []byte {
			// pkiutil refuses to make keys under 2048 bits, so build this CSR with crypto/x509.
			key, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := pkiutil.GenCSRTemplate(pkiutil.CertOptions{Host: wantID})
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
			if err != nil {
				t.Fatal(err)
			}
			return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		}, codes.InvalidArgument, "key_policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := newClient(t, mc, clientConfig{token: tc.token})
			before := mc.Counter(t, "meshca_csr_requests_total", nil)
			reasonBefore := mc.Counter(t, "meshca_csr_requests_total", map[string]string{"reason": tc.reason})
			chain, err := client.CSRSign(tc.csr(t), 3600)
			if err == nil {
				t.Fatalf("CSRSign succeeded with %d certificate(s), want %v", len(chain), tc.want)
			}
			if chain != nil {
				t.Errorf("CSRSign returned a chain with its error: %v", chain)
			}
			if got := codeOf(t, err); got != tc.want {
				t.Errorf("code %v, want %v (%v)", got, tc.want, err)
			}
			if got := mc.Counter(t, "meshca_csr_requests_total", nil) - before; got != 1 {
				t.Errorf("meshca saw %v request(s), want 1: the client must not retry this refusal", got)
			}
			reason := map[string]string{"reason": tc.reason}
			if got := mc.Counter(t, "meshca_csr_requests_total", reason) - reasonBefore; got != 1 {
				t.Errorf("meshca_csr_requests_total{reason=%q} rose by %v, want 1", tc.reason, got)
			}
		})
	}
	if got := mc.Counter(t, "meshca_certificates_issued_total", nil); got != 0 {
		t.Errorf("meshca_certificates_issued_total = %v, want 0", got)
	}
}

// TestCitadelClientReceivesTheWholeTrustBundle: with a second root in the bundle (a rotation's next root),
// Istio's client gets both in the last element of the chain (what istio-agent writes as root-cert.pem), and
// every other element stays exactly one certificate.
func TestCitadelClientReceivesTheWholeTrustBundle(t *testing.T) {
	next := meshcatest.Start(t, meshcatest.Options{}) // only its root is used: a second, unrelated root
	mc := meshcatest.Start(t, meshcatest.Options{ExtraRoots: []*x509.Certificate{next.Root}})
	csrPEM, _ := genCSR(t, wantID, true)
	chain, err := newClient(t, mc, clientConfig{token: mc.Token(t, ns, sa)}).CSRSign(csrPEM, 3600)
	if err != nil {
		t.Fatalf("CSRSign: %v", err)
	}
	for n, p := range chain[:len(chain)-1] {
		if c, _, err := pkiutil.ParsePemEncodedCertificateChain([]byte(p)); err != nil || len(c) != 1 {
			t.Errorf("chain[%d] is not exactly one certificate: %d, %v", n, len(c), err)
		}
	}
	roots, _, err := pkiutil.ParsePemEncodedCertificateChain([]byte(chain[len(chain)-1]))
	if err != nil || len(roots) != 2 || !roots[0].Equal(mc.Root) || !roots[1].Equal(next.Root) {
		t.Fatalf("last element holds %d certificates (%v); want the mesh root and the next root", len(roots), err)
	}
}

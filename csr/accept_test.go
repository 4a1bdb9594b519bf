package csr_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"slices"
	"testing"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
)

// goCSR builds a CSR with crypto/x509, as istio-agent (pkiutil.GenCSR) does: the subject and extensions of
// tmpl, signed by key.
func goCSR(tb testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	tb.Helper()
	der := must(tb, func() ([]byte, error) { return x509.CreateCertificateRequest(rand.Reader, tmpl, key) })
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// istioAgentCSR has the shape of pkiutil.GenCSR's output: subject O=<org> (empty unless the agent sets one),
// an optional dual-use CN, and one critical subjectAltName holding the SPIFFE URI.
func istioAgentCSR(tb testing.TB, key crypto.Signer, org, cn string) []byte {
	tb.Helper()
	return goCSR(tb, key, &x509.CertificateRequest{
		Subject:         pkix.Name{Organization: []string{org}, CommonName: cn},
		ExtraExtensions: []pkix.Extension{san(tb, true, uriName(sleepID))},
	})
}

// TestParseAccepts: what istio-agent and ztunnel send, and every request within the workload profile, parses;
// the Request says what the CSR holds.
func TestParseAccepts(t *testing.T) {
	rsa2048 := catest.RSAKey(t, 2048)
	p384 := must(t, func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) })
	spiffe := san(t, true, uriName(sleepID))
	both := extKeyUsage(t, oidServerAuth, oidClientAuth)
	u := must(t, func() (*url.URL, error) { return url.Parse(sleepID) })
	tests := []struct {
		name       string
		in         []byte
		keyType    string
		hasSubject bool
		isCA       bool
	}{
		{
			"istio-agent's RSA-2048 CSR with an empty O parses",
			istioAgentCSR(t, rsa2048, "", ""),
			"RSA-2048",
			true,
			false,
		},
		{"istio-agent's RSA-2048 CSR with O=<trust domain> parses",
			istioAgentCSR(t, rsa2048, "cluster.local", ""), "RSA-2048", true, false},
		{"istio-agent's ECDSA P-256 CSR with O=<trust domain> parses",
			istioAgentCSR(t, ecKey(t), "cluster.local", ""), "ECDSA-P256", true, false},
		{"istio-agent's ECDSA P-384 CSR parses", istioAgentCSR(t, p384, "", ""), "ECDSA-P384", true, false},
		{"istio-agent's dual-use CSR with a CN parses",
			istioAgentCSR(t, ecKey(t), "", "sleep.default.svc"), "ECDSA-P256", true, false},
		{"ztunnel's rcgen CSR (P-256, empty subject, critical URI SAN only) parses",
			rawCSR{exts: []pkix.Extension{spiffe}}.build(t), "ECDSA-P256", false, false},
		{"a committed OpenSSL CSR shaped like ztunnel's parses",
			readTestdata(t, "ztunnel-openssl-p256.pem"), "ECDSA-P256", false, false},
		{"a committed Go CSR parses", readTestdata(t, "good-p256.pem"), "ECDSA-P256", false, false},
		{"an RSA-3072 CSR parses", rawCSR{key: catest.RSAKey(t, 3072), exts: []pkix.Extension{spiffe}}.build(t),
			"RSA-3072", false, false},
		{"an RSA-4096 CSR parses", rawCSR{key: catest.RSAKey(t, 4096), exts: []pkix.Extension{spiffe}}.build(t),
			"RSA-4096", false, false},
		{"an RSA key of an unusual size parses as RSA-other",
			rawCSR{key: catest.RSAKey(t, 2304), exts: []pkix.Extension{spiffe}}.build(t), "RSA-other", false, false},
		{"an Ed25519 CSR parses", rawCSR{key: catest.Ed25519Key(t), exts: []pkix.Extension{spiffe}}.build(t),
			"Ed25519", false, false},
		{"an RSA-PSS signed CSR parses", goCSR(t, rsa2048, &x509.CertificateRequest{URIs: []*url.URL{u},
			SignatureAlgorithm: x509.SHA256WithRSAPSS}), "RSA-2048", false, false},
		{"a P-256 CSR signed over SHA-384 parses", goCSR(t, ecKey(t), &x509.CertificateRequest{URIs: []*url.URL{u},
			SignatureAlgorithm: x509.ECDSAWithSHA384}), "ECDSA-P256", false, false},
		{
			"keyUsage digitalSignature parses",
			withSPIFFE(t, keyUsage(t, kuDigitalSignature)),
			"ECDSA-P256",
			false,
			false,
		},
		{"keyUsage digitalSignature and keyEncipherment for an RSA key parses", rawCSR{key: rsa2048,
			exts: []pkix.Extension{spiffe, keyUsage(t, kuDigitalSignature, kuKeyEncipherment)}}.build(t),
			"RSA-2048", false, false},
		{"keyUsage keyEncipherment alone for an RSA key parses",
			rawCSR{key: rsa2048, exts: []pkix.Extension{spiffe, keyUsage(t, kuKeyEncipherment)}}.build(t),
			"RSA-2048", false, false},
		{"extKeyUsage serverAuth and clientAuth parses", withSPIFFE(t, both), "ECDSA-P256", false, false},
		{
			"extKeyUsage clientAuth alone parses",
			withSPIFFE(t, extKeyUsage(t, oidClientAuth)),
			"ECDSA-P256",
			false,
			false,
		},
		{"basicConstraints cA=FALSE parses", withSPIFFE(t, ext(t, oidBasicConstraints, true, []byte{0x30, 0})),
			"ECDSA-P256", false, false},
		{"a subjectKeyIdentifier parses", withSPIFFE(t, ext(t, oidSKI, false, []byte{4, 3, 1, 2, 3})), "ECDSA-P256",
			false, false},
		{"every allowed extension at once parses", withSPIFFE(t, keyUsage(t, kuDigitalSignature), both,
			ext(t, oidBasicConstraints, true, []byte{0x30, 0}), ext(t, oidSKI, false, []byte{4, 3, 1, 2, 3})),
			"ECDSA-P256", false, false},
		{"a CSR with no extension at all parses", rawCSR{}.build(t), "ECDSA-P256", false, false},
		{"a CSR with a privileged-looking subject parses: the subject is never copied",
			istioAgentCSR(t, ecKey(t), "system:masters", "admin"), "ECDSA-P256", true, false},
		{"a CA request parses and is flagged for policy to refuse",
			withSPIFFE(t, ext(t, oidBasicConstraints, true, struct{ IsCA bool }{true})), "ECDSA-P256", false, true},
		{"a NEW CERTIFICATE REQUEST PEM block parses", pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST",
			Bytes: rawCSR{exts: []pkix.Extension{spiffe}}.der(t)}), "ECDSA-P256", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := csr.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.KeyType != tt.keyType || r.HasSubject != tt.hasSubject || r.IsCA != tt.isCA {
				t.Errorf("KeyType, HasSubject, IsCA = %q, %v, %v; want %q, %v, %v",
					r.KeyType, r.HasSubject, r.IsCA, tt.keyType, tt.hasSubject, tt.isCA)
			}
			if !slices.Contains(csr.KeyTypes(), r.KeyType) {
				t.Errorf("KeyType %q is not in KeyTypes() %q", r.KeyType, csr.KeyTypes())
			}
		})
	}
}

// TestParseSurfacesEmailAndIPSANs: the parser lets email and IP SANs through in the Request, for the issuance
// policy to refuse them as forbidden SANs, like DNS names it does not allow.
func TestParseSurfacesEmailAndIPSANs(t *testing.T) {
	in, _ := catest.CSR(t, catest.CSROptions{URIs: []string{sleepID}, Emails: []string{"root@example.com"},
		IPs: []string{"10.0.0.1"}, DNS: []string{"sleep.default.svc"}})
	r, err := csr.Parse(in)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	c := r.CSR
	if len(c.URIs) != 1 || len(c.EmailAddresses) != 1 || len(c.IPAddresses) != 1 || len(c.DNSNames) != 1 {
		t.Errorf("Request holds %d URI, %d email, %d IP and %d DNS SANs; want one of each",
			len(c.URIs), len(c.EmailAddresses), len(c.IPAddresses), len(c.DNSNames))
	}
}

// TestKeyTypes: the list is the fixed, bounded set metrics pre-create, and callers cannot change it.
func TestKeyTypes(t *testing.T) {
	want := []string{"ECDSA-P256", "ECDSA-P384", "Ed25519", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87",
		"MLDSA65-ECDSA-P256", "RSA-2048", "RSA-3072", "RSA-4096", "RSA-other"}
	got := csr.KeyTypes()
	if !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("KeyTypes() = %q, want %q", got, want)
	}
	got[0] = "changed"
	if slices.Contains(csr.KeyTypes(), "changed") {
		t.Error("KeyTypes() returns a slice that changes the package's list")
	}
}

// TestCheckKeyNamesEveryKeyType: CheckKey maps each accepted key to one of KeyTypes.
func TestCheckKeyNamesEveryKeyType(t *testing.T) {
	keys := map[string]crypto.PublicKey{
		"RSA-2048": catest.RSAKey(t, 2048).Public(), "RSA-2304": catest.RSAKey(t, 2304).Public(),
		"P-256": ecKey(t).Public(), "Ed25519": catest.Ed25519Key(t).Public(),
	}
	for name, k := range keys {
		kt, err := csr.CheckKey(k)
		if err != nil || !slices.Contains(csr.KeyTypes(), kt) {
			t.Errorf("CheckKey(%s) = %q, %v; want one of %q", name, kt, err, csr.KeyTypes())
		}
	}
}

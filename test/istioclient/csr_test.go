package istioclient

import (
	"testing"

	pkiutil "istio.io/istio/security/pkg/pki/util"

	"github.com/meshca/meshca/csr"
)

// TestPkiutilCSRsParse: every CSR istio-agent can make with pkiutil.GenCSR (RSA of the sizes
// WORKLOAD_RSA_KEY_SIZE allows in practice, ECDSA on both curves ECC_CURVE offers, with and without an
// organisation or a dual-use CN) passes meshca's CSR parser, with the expected key type. This needs no server.
func TestPkiutilCSRsParse(t *testing.T) {
	tests := []struct {
		name    string
		opts    pkiutil.CertOptions
		keyType string
	}{
		{"the default RSA-2048 CSR parses", pkiutil.CertOptions{RSAKeySize: 2048}, "RSA-2048"},
		{"an RSA-3072 CSR parses", pkiutil.CertOptions{RSAKeySize: 3072}, "RSA-3072"},
		{"an RSA-4096 CSR parses", pkiutil.CertOptions{RSAKeySize: 4096}, "RSA-4096"},
		{"an RSA-2048 CSR with O=<trust domain> parses", pkiutil.CertOptions{RSAKeySize: 2048,
			Org: "cluster.local"}, "RSA-2048"},
		{"an ECDSA P-256 CSR parses", pkiutil.CertOptions{ECSigAlg: pkiutil.EcdsaSigAlg,
			ECCCurve: pkiutil.P256Curve}, "ECDSA-P256"},
		{"an ECDSA P-384 CSR parses", pkiutil.CertOptions{ECSigAlg: pkiutil.EcdsaSigAlg,
			ECCCurve: pkiutil.P384Curve}, "ECDSA-P384"},
		{"an ECDSA CSR with O=<trust domain> and PKCS #8 keys parses", pkiutil.CertOptions{
			ECSigAlg: pkiutil.EcdsaSigAlg, Org: "cluster.local", PKCS8Key: true}, "ECDSA-P256"},
		{"a dual-use CSR with a CN parses", pkiutil.CertOptions{ECSigAlg: pkiutil.EcdsaSigAlg, IsDualUse: true},
			"ECDSA-P256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Host = wantID
			csrPEM, _, err := pkiutil.GenCSR(tt.opts)
			if err != nil {
				t.Fatalf("pkiutil.GenCSR: %v", err)
			}
			r, err := csr.Parse(csrPEM)
			if err != nil {
				t.Fatalf("csr.Parse refuses istio-agent's CSR: %v", err)
			}
			if r.KeyType != tt.keyType || r.IsCA {
				t.Errorf("KeyType %q, IsCA %v; want %q, false", r.KeyType, r.IsCA, tt.keyType)
			}
			if !r.HasSubject || tt.opts.IsDualUse != (r.CSR.Subject.CommonName != "") {
				t.Errorf("HasSubject %v, CN %q: pkiutil always sends O= and a CN for dual use", r.HasSubject,
					r.CSR.Subject.CommonName)
			}
			if len(r.CSR.URIs) != 1 || r.CSR.URIs[0].String() != wantID {
				t.Errorf("URI SANs %v, want [%s]", r.CSR.URIs, wantID)
			}
		})
	}
}

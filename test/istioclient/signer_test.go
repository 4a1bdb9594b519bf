package istioclient

import (
	"crypto/x509"
	"testing"

	"google.golang.org/grpc/codes"
	pkiutil "istio.io/istio/security/pkg/pki/util"

	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/test/meshcatest"
)

// TestCitadelClientRoutedBySigner: Istio's CA client, sending CertSigner as istio-agent does for
// ISTIO_META_CERT_SIGNER, gets a certificate from the CA a policy rule routes that signer to; the finance
// namespace gets that CA by namespace alone; every other workload gets the mesh CA; a signer no rule names
// is refused with the code that makes istio-agent give up. Each chain verifies to its own root only, and
// each response's trust bundle holds both roots, so that workloads of both CAs trust each other.
func TestCitadelClientRoutedBySigner(t *testing.T) {
	mc := meshcatest.Start(t, meshcatest.Options{Backends: []string{"finance"}, Rules: policy.Config{
		Rules: []policy.Rule{
			{Name: "finance-signer", Match: policy.Match{CertSigners: []string{"finance"}},
				Backends: []string{"finance"}},
			{Name: "finance-ns", Match: policy.Match{Namespaces: []string{"finance"}}, Backends: []string{"finance"}},
		}}})
	finance := mc.BackendRoots["finance"]
	for _, tc := range []struct {
		name, ns, sa, signer string
		root                 *x509.Certificate
		want                 codes.Code
	}{
		{"no signer: the mesh CA", ns, sa, "", mc.Root, codes.OK},
		{"CertSigner finance: the finance CA", ns, sa, "finance", finance, codes.OK},
		{"the finance namespace: the finance CA", "finance", "ledger", "", finance, codes.OK},
		{"a signer no rule names is refused", ns, sa, "hr", nil, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "spiffe://" + meshcatest.TrustDomain + "/ns/" + tc.ns + "/sa/" + tc.sa
			client := newClient(t, mc, clientConfig{token: mc.Token(t, tc.ns, tc.sa), certSigner: tc.signer})
			csrPEM, _ := genCSR(t, id, true)
			chain, err := client.CSRSign(csrPEM, 3600)
			if tc.want != codes.OK {
				if err == nil || codeOf(t, err) != tc.want {
					t.Fatalf("CSRSign = %d certificates, %v; want %v", len(chain), err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("CSRSign: %v", err)
			}
			var certs []*x509.Certificate
			for _, p := range chain[:len(chain)-1] {
				c, _, err := pkiutil.ParsePemEncodedCertificateChain([]byte(p))
				if err != nil || len(c) != 1 {
					t.Fatalf("a chain element is not one certificate: %v", err)
				}
				certs = append(certs, c[0])
			}
			bundle, _, err := pkiutil.ParsePemEncodedCertificateChain([]byte(chain[len(chain)-1]))
			if err != nil || len(bundle) != 2 {
				t.Errorf("the trust bundle holds %d roots (%v), want both", len(bundle), err)
			}
			for _, r := range []*x509.Certificate{mc.Root, finance} {
				roots, inters := x509.NewCertPool(), x509.NewCertPool()
				roots.AddCert(r)
				for _, c := range certs[1:] {
					inters.AddCert(c)
				}
				_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters,
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
				if mine := r.Equal(tc.root); (err == nil) != mine {
					t.Errorf("verifies to %s: %v; want it to verify only to its own root", r.Subject, err)
				}
			}
		})
	}
}

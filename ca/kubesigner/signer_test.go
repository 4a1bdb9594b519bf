package kubesigner_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/kubesigner"
)

// Requests created as istiod, approved, for meshca's signer get a chain that verifies to meshca's root with
// exactly the requested SPIFFE ID; every other kind of request is either left alone (not meshca's signer, not
// approved, denied) or, for meshca's signer, marked Failed with the reason, counted and audited.
func TestSignerAgainstAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver (scripts/testbins.sh); skipped under -short")
	}
	k, meshca, istiod, other := cluster(t)
	dir, gen := catest.FileCA(t)
	rep := startReplica(t, meshca, replicaOptions{identity: "replica-a", caDir: dir})
	const id = "spiffe://cluster.local/ns/shop/sa/cart"
	csrOf := func(o catest.CSROptions) []byte { b, _ := catest.CSR(t, o); return b }
	good := csrOf(catest.CSROptions{URIs: []string{id}})

	signed := create(t, k, istiod, request{csr: good, approved: true, seconds: 7200})
	refused := []struct {
		name    string
		client  any
		req     request
		reason  string
		message string
	}{
		{"a requester that is not an allowed registration authority", other,
			request{csr: good, approved: true}, "PermissionDenied", "not an allowed registration authority"},
		{"a CSR for a trust domain that is not the mesh's", istiod,
			request{csr: csrOf(catest.CSROptions{URIs: []string{"spiffe://evil.example/ns/shop/sa/cart"}}),
				approved: true}, "IdentityMismatch", "evil.example"},
		{"a CSR asking for a DNS name besides the SPIFFE ID", istiod,
			request{csr: csrOf(catest.CSROptions{URIs: []string{id}, DNS: []string{"cart.shop.svc"}}),
				approved: true}, "ForbiddenSan", "cart.shop.svc"},
		{"a CSR asking for a CA certificate", istiod,
			request{csr: csrOf(catest.CSROptions{URIs: []string{id}, IsCA: true}), approved: true},
			"CaRequested", "CA"},
		{"the cert sign usage", istiod, request{csr: good, approved: true,
			usages: append([]certv1.KeyUsage{certv1.UsageCertSign}, istioUsages...)}, "CaRequested", "cert sign"},
		{"a usage outside the workload profile", istiod, request{csr: good, approved: true,
			usages: []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageCodeSigning}},
			"PermissionDenied", "code signing"},
		{"a key meshca does not certify", istiod,
			request{csr: csrOf(catest.CSROptions{URIs: []string{id}, Key: catest.RSAKey(t, 1024)}), approved: true},
			"KeyPolicy", "1024"},
		{"a CSR without a SPIFFE ID", istiod,
			request{csr: csrOf(catest.CSROptions{DNS: []string{"cart.shop.svc"}}), approved: true},
			"IdentityMismatch", "names no SPIFFE ID"},
	}
	names := make([]string, len(refused))
	for n, c := range refused {
		client := istiod
		if c.client == other {
			client = other
		}
		names[n] = create(t, k, client, c.req)
	}
	unapproved := create(t, k, istiod, request{csr: good})
	denied := create(t, k, istiod, request{csr: good, denied: true})
	foreign := create(t, k, istiod, request{csr: good, signer: "example.com/other", approved: true})

	t.Run("an approved request from istiod is signed", func(t *testing.T) {
		var r *certv1.CertificateSigningRequest
		catest.Eventually(t, 30*time.Second, "certificate", func() error {
			if r = get(t, k, signed); len(r.Status.Certificate) == 0 {
				return fmt.Errorf("no certificate; conditions %v", r.Status.Conditions)
			}
			return nil
		})
		chain := parseChain(t, r.Status.Certificate)
		if len(chain) != 3 || !chain[2].Equal(gen.Root) || !chain[1].Equal(gen.Intermediate) {
			t.Fatalf("chain has %d certificates; want leaf, intermediate, root", len(chain))
		}
		roots := x509.NewCertPool()
		roots.AddCert(gen.Root)
		inter := x509.NewCertPool()
		inter.AddCert(chain[1])
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatal(err)
		}
		leaf := chain[0]
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id || len(leaf.DNSNames) != 0 {
			t.Errorf("leaf SANs: URIs %v, DNS %v; want exactly %s", leaf.URIs, leaf.DNSNames, id)
		}
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		if life < 2*time.Hour-10*time.Minute || life > 2*time.Hour+10*time.Minute {
			t.Errorf("lifetime %s; want the requested 2h (expirationSeconds 7200)", life)
		}
		if failed(r) != nil {
			t.Errorf("a signed request also carries %+v", failed(r))
		}
		audit := rep.audit.String()
		for _, want := range []string{`"authn":"k8s-csr"`, `"caller":"ns/istio-system/sa/istiod"`,
			`"identity":"` + id + `"`, `"peer":"csr/` + signed + `"`} {
			if !strings.Contains(audit, want) {
				t.Errorf("audit log lacks %s:\n%s", want, audit)
			}
		}
	})
	for n, c := range refused {
		t.Run(c.name+" is marked Failed", func(t *testing.T) {
			var cond *certv1.CertificateSigningRequestCondition
			catest.Eventually(t, 30*time.Second, "Failed condition", func() error {
				r := get(t, k, names[n])
				if len(r.Status.Certificate) > 0 {
					t.Fatalf("signed: %s", r.Status.Certificate)
				}
				if cond = failed(r); cond == nil {
					return fmt.Errorf("not Failed yet")
				}
				return nil
			})
			if cond.Reason != c.reason || !strings.Contains(cond.Message, c.message) {
				t.Errorf("Failed %s: %s; want reason %s and a message naming %q", cond.Reason, cond.Message,
					c.reason, c.message)
			}
		})
	}
	t.Run("refusals are counted", func(t *testing.T) {
		got := rep.metric(t, "meshca_k8s_signer_requests_total",
			map[string]string{"signer": signerName, "result": kubesigner.ResultFailed})
		if got != float64(len(refused)) {
			t.Errorf("meshca_k8s_signer_requests_total{result=failed} = %v, want %d", got, len(refused))
		}
		if n := rep.metric(t, "meshca_csr_requests_total",
			map[string]string{"result": "rejected", "reason": "identity_mismatch"}); n != 2 {
			t.Errorf("meshca_csr_requests_total{reason=identity_mismatch} = %v, want 2", n)
		}
	})
	t.Run("unapproved, denied and other signers' requests are left alone", func(t *testing.T) {
		time.Sleep(time.Second) // the signer has answered everything else; give it time to misbehave
		for _, name := range []string{unapproved, denied, foreign} {
			if r := get(t, k, name); len(r.Status.Certificate) > 0 || failed(r) != nil {
				t.Errorf("%s was answered: certificate %d bytes, conditions %v", name, len(r.Status.Certificate),
					r.Status.Conditions)
			}
		}
	})
	t.Run("the CA bundle istiod mounts holds meshca's root", func(t *testing.T) {
		catest.Eventually(t, 30*time.Second, "CA bundle", func() error {
			cm, err := k.Client.CoreV1().ConfigMaps(catest.MeshcaNamespace).Get(context.Background(),
				"external-ca-cert", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cm.Data[kubesigner.CABundleKey] != string(gen.RootPEM) {
				return fmt.Errorf("root-cert.pem is not meshca's root:\n%s", cm.Data[kubesigner.CABundleKey])
			}
			return nil
		})
	})
	t.Run("a request approved late is signed then", func(t *testing.T) {
		decide(t, k, unapproved, false)
		catest.Eventually(t, 30*time.Second, "certificate", func() error {
			if len(get(t, k, unapproved).Status.Certificate) == 0 {
				return fmt.Errorf("no certificate")
			}
			return nil
		})
	})
}

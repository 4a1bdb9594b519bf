package kubesigner_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/kubesigner"
	"github.com/meshca/meshca/ca/policy"
)

// A signer's backends (k8sSigner.signers[].backends) narrow what the deciding policy rule allows and never
// widen it: a CSR whose signer may only use backends the rule does not allow is marked Failed with reason
// BackendNotAllowed, counted and audited; the same identity through a signer that shares a backend with the
// rule is signed by that backend, and identities no rule selects follow the signer's routing.
func TestSignerRoutingStaysWithinPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver (scripts/testbins.sh); skipped under -short")
	}
	k, meshca, istiod, _ := cluster(t)
	dirA, genA := catest.FileCA(t)
	dirB, genB := catest.FileCA(t)
	const all, vaultOnly = "meshca.io/routing-all", "meshca.io/routing-secondary"
	rep := startReplica(t, meshca, replicaOptions{identity: "routing",
		caDir: dirA, extra: []ca.NamedBackend{{Name: "secondary", Backend: catest.FileBackend(t, dirB, nil)}},
		signers: []kubesigner.SignerConfig{{Name: all}, {Name: vaultOnly, Backends: []string{"secondary"}}},
		// Payments is signed by primary only.
		rules: policy.Config{Rules: []policy.Rule{{Name: "payments",
			Match: policy.Match{Namespaces: []string{"pay"}}, Backends: []string{"primary"}}}}})
	csrFor := func(id string) []byte { b, _ := catest.WorkloadCSR(t, id); return b }
	const pay, shop = "spiffe://cluster.local/ns/pay/sa/api", "spiffe://cluster.local/ns/shop/sa/cart"
	refused := create(t, k, istiod, request{csr: csrFor(pay), signer: vaultOnly, approved: true})
	signed := []struct {
		name, id, signer, issuer string
	}{
		{"the rule's identity through a signer that shares its backend is signed by it", pay, all,
			genA.Intermediate.Subject.String()},
		{"an identity no rule selects follows the signer's backends", shop, vaultOnly,
			genB.Intermediate.Subject.String()},
	}
	names := make([]string, len(signed))
	for n, c := range signed {
		names[n] = create(t, k, istiod, request{csr: csrFor(c.id), signer: c.signer, approved: true})
	}

	t.Run("a signer routed outside the rule's backends is marked Failed", func(t *testing.T) {
		var cond *certv1.CertificateSigningRequestCondition
		catest.Eventually(t, 30*time.Second, "Failed condition", func() error {
			r := get(t, k, refused)
			if len(r.Status.Certificate) > 0 {
				t.Fatalf("signed, by %s", parseChain(t, r.Status.Certificate)[0].Issuer)
			}
			if cond = failed(r); cond == nil {
				return fmt.Errorf("not Failed yet")
			}
			return nil
		})
		if cond.Reason != "BackendNotAllowed" || !strings.Contains(cond.Message, "payments") {
			t.Errorf("Failed %s: %s; want reason BackendNotAllowed naming rule payments", cond.Reason, cond.Message)
		}
		// The controller counts the request after its status update is stored: wait for the count.
		catest.Eventually(t, 10*time.Second, "the failed request counted", func() error {
			if n := rep.metric(t, "meshca_k8s_signer_requests_total",
				map[string]string{"signer": vaultOnly, "result": kubesigner.ResultFailed}); n != 1 {
				return fmt.Errorf("meshca_k8s_signer_requests_total{result=failed} = %v, want 1", n)
			}
			return nil
		})
		if n := rep.metric(t, "meshca_csr_requests_total",
			map[string]string{"result": "rejected", "reason": "backend_not_allowed"}); n != 1 {
			t.Errorf("meshca_csr_requests_total{reason=backend_not_allowed} = %v, want 1", n)
		}
		for _, want := range []string{`"reason":"backend_not_allowed"`, `"peer":"csr/` + refused + `"`} {
			if !strings.Contains(rep.audit.String(), want) {
				t.Errorf("audit log lacks %s:\n%s", want, rep.audit.String())
			}
		}
	})
	for n, c := range signed {
		t.Run(c.name, func(t *testing.T) {
			var r *certv1.CertificateSigningRequest
			catest.Eventually(t, 30*time.Second, "certificate", func() error {
				if r = get(t, k, names[n]); len(r.Status.Certificate) == 0 {
					return fmt.Errorf("no certificate; conditions %v", r.Status.Conditions)
				}
				return nil
			})
			if got := parseChain(t, r.Status.Certificate)[0].Issuer.String(); got != c.issuer {
				t.Errorf("issued by %s, want %s", got, c.issuer)
			}
		})
	}
}

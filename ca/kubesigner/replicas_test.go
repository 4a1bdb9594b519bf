package kubesigner_test

import (
	"fmt"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/kubesigner"
)

// Two replicas never both sign: only the Lease holder answers, every request gets exactly one certificate, and
// when the leader stops, the other replica takes over.
func TestTwoReplicasOneSigns(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver (scripts/testbins.sh); skipped under -short")
	}
	k, meshca, istiod, _ := cluster(t)
	dir, _ := catest.FileCA(t)
	a := startReplica(t, meshca, replicaOptions{identity: "replica-a", caDir: dir})
	b := startReplica(t, meshca, replicaOptions{identity: "replica-b", caDir: dir})
	var leader, follower *replica
	catest.Eventually(t, 30*time.Second, "a leader", func() error {
		switch {
		case a.signer.Leader() && b.signer.Leader():
			t.Fatal("both replicas lead")
		case a.signer.Leader():
			leader, follower = a, b
		case b.signer.Leader():
			leader, follower = b, a
		default:
			return fmt.Errorf("no leader yet")
		}
		return nil
	})
	signAll := func(n int) {
		t.Helper()
		names := make([]string, n)
		for i := range names {
			csr, _ := catest.WorkloadCSR(t, fmt.Sprintf("spiffe://cluster.local/ns/ns%d/sa/app", i))
			names[i] = create(t, k, istiod, request{csr: csr, approved: true})
		}
		catest.Eventually(t, 60*time.Second, "every certificate", func() error {
			for _, name := range names {
				if len(get(t, k, name).Status.Certificate) == 0 {
					return fmt.Errorf("%s not signed", name)
				}
			}
			return nil
		})
	}
	signed := func(r *replica) float64 {
		return r.metric(t, "meshca_k8s_signer_requests_total",
			map[string]string{"signer": signerName, "result": kubesigner.ResultSigned})
	}
	issued := func(r *replica) float64 {
		return r.metric(t, "meshca_certificates_issued_total", map[string]string{"backend": "primary"})
	}

	signAll(10)
	if signed(leader) != 10 || issued(leader) != 10 || signed(follower) != 0 || issued(follower) != 0 {
		t.Fatalf("leader signed %v (issued %v), follower signed %v (issued %v); want 10 and 0",
			signed(leader), issued(leader), signed(follower), issued(follower))
	}

	leader.stop()
	<-leader.done
	catest.Eventually(t, 30*time.Second, "the follower leads", func() error {
		if !follower.signer.Leader() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	signAll(5)
	if signed(follower) != 5 || issued(follower) != 5 || signed(leader) != 10 {
		t.Errorf("after the handover the follower signed %v (issued %v), the old leader %v; want 5 and 10",
			signed(follower), issued(follower), signed(leader))
	}
}

// The k8s-signer component grants no more than signing: meshca cannot approve, cannot sign for other signers,
// cannot create or delete requests, and reaches only its own Lease and ConfigMap by name.
func TestSignerRBACIsLeastPrivilege(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver (scripts/testbins.sh); skipped under -short")
	}
	_, meshca, _, _ := cluster(t)
	csr := func(verb, sub, name string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Group: "certificates.k8s.io", Resource: "certificatesigningrequests",
			Subresource: sub, Name: name, Verb: verb}
	}
	signers := func(verb, name string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Group: "certificates.k8s.io", Resource: "signers", Name: name,
			Verb: verb}
	}
	cases := []struct {
		name  string
		attrs authorizationv1.ResourceAttributes
		want  bool
	}{
		{"meshca signs for meshca.io signers", signers("sign", "meshca.io/*"), true},
		{"meshca writes request status", csr("update", "status", ""), true},
		{"meshca watches requests", csr("watch", "", ""), true},
		{"meshca does not sign for other signers", signers("sign", "example.com/*"), false},
		{"meshca does not sign for Kubernetes' signers", signers("sign", "kubernetes.io/kube-apiserver-client"),
			false},
		{"meshca does not approve", signers("approve", "meshca.io/*"), false},
		{"meshca does not write approvals", csr("update", "approval", ""), false},
		{"meshca does not create requests", csr("create", "", ""), false},
		{"meshca does not delete requests", csr("delete", "", "x"), false},
		{"meshca does not update other ConfigMaps in its namespace", authorizationv1.ResourceAttributes{
			Resource: "configmaps", Namespace: catest.MeshcaNamespace, Name: "istio", Verb: "update"}, false},
		{"meshca updates its CA bundle ConfigMap", authorizationv1.ResourceAttributes{
			Resource: "configmaps", Namespace: catest.MeshcaNamespace, Name: "external-ca-cert", Verb: "update"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := allowed(t, meshca, c.attrs); got != c.want {
				t.Errorf("allowed = %v, want %v", got, c.want)
			}
		})
	}
}

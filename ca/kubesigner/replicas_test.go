package kubesigner_test

import (
	"fmt"
	"testing"
	"time"

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

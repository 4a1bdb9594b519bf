package server_test

import (
	"fmt"
	"testing"

	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/csr"
)

// TestIssuanceFeedsTheExpiryTracker: certificates issued over gRPC to several identities appear in the
// per-identity tracker with exactly the notAfter of the certificate each one received.
func TestIssuanceFeedsTheExpiryTracker(t *testing.T) {
	tr, err := expiry.NewTracker(expiry.TrackerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m := catest.StartMeshca(t, catest.MeshcaOptions{Observer: tr})
	conn := m.Dial(t)
	const n = 5
	for k := range n {
		sa := fmt.Sprintf("sa-%d", k)
		id := "spiffe://cluster.local/ns/default/sa/" + sa
		csrPEM, _ := catest.WorkloadCSR(t, id)
		resp, err := call(t, conn, m.Token(t, "default", sa), &pb.IstioCertificateRequest{Csr: string(csrPEM),
			ValidityDuration: int64(3600 * (k + 1))})
		if err != nil {
			t.Fatal(err)
		}
		leaf := parseChain(t, resp.GetCertChain())[0]
		st, ok := tr.Lookup(csr.Identity{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: sa})
		if !ok || !st.NotAfter.Equal(leaf.NotAfter) {
			t.Errorf("%s: tracker has %v (tracked %v), want the issued notAfter %v", sa, st.NotAfter, ok, leaf.NotAfter)
		}
	}
	if tr.Len() != n {
		t.Errorf("tracker holds %d identities, want %d (meshca's own serving certificate is not a workload)",
			tr.Len(), n)
	}
}

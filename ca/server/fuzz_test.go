package server_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca/catest"
)

// FuzzCreateCertificate sends arbitrary CSRs and lifetimes with a valid token through the real gRPC server:
// nothing panics, every refusal has a caller-side code, and anything issued is exactly the caller's identity.
func FuzzCreateCertificate(f *testing.F) {
	m := catest.StartMeshca(f, catest.MeshcaOptions{})
	conn := m.Dial(f)
	tok := m.Token(f, "default", "sleep")
	good, _ := catest.WorkloadCSR(f, sleepID)
	other, _ := catest.WorkloadCSR(f, "spiffe://cluster.local/ns/default/sa/admin")
	f.Add(string(good), int64(0))
	f.Add(string(other), int64(3600))
	f.Add("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n", int64(-1))
	f.Fuzz(func(t *testing.T, csr string, validity int64) {
		resp, err := call(t, conn, tok, &pb.IstioCertificateRequest{Csr: csr, ValidityDuration: validity})
		if err != nil {
			switch status.Code(err) {
			case codes.InvalidArgument, codes.PermissionDenied, codes.ResourceExhausted:
			default:
				t.Fatalf("unexpected code for a bad request: %v", err)
			}
			return
		}
		leaf := parseChain(t, resp.GetCertChain())[0]
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != sleepID || len(leaf.DNSNames)+len(leaf.IPAddresses) != 0 {
			t.Fatalf("issued %v %v to ns/default/sa/sleep", leaf.URIs, leaf.DNSNames)
		}
	})
}

package istioclient

import (
	"testing"
	"time"

	"github.com/meshca/meshca/internal/compliance"
	"github.com/meshca/meshca/test/meshcatest"
)

// Istio's CA client (what istio-agent runs) obtains a certificate from meshca under COMPLIANCE_POLICY=pqc, over
// TLS 1.3 with X25519MLKEM768. This Istio version's citadel client does not apply COMPLIANCE_POLICY to its own
// connection (only Envoy and istiod's servers do); Go's default client offers X25519MLKEM768 first, which is
// what meshca's pqc policy accepts.
func TestCitadelClientObtainsCertificateUnderPQC(t *testing.T) {
	mc := meshcatest.Start(t, meshcatest.Options{TLSPolicy: compliance.PQC})
	client := newClient(t, mc, clientConfig{token: mc.Token(t, ns, sa)})
	csrPEM, keyPEM := genCSR(t, wantID, true)
	chain, err := client.CSRSign(csrPEM, 3600)
	if err != nil {
		t.Fatalf("CSRSign under pqc: %v", err)
	}
	checkChain(t, mc, chain, keyPEM, false, time.Hour)
	if got := mc.Counter(t, "meshca_tls_handshakes_total", map[string]string{"endpoint": "grpc",
		"version": "TLS 1.3", "group": "X25519MLKEM768", "result": "ok"}); got < 1 {
		t.Errorf("meshca_tls_handshakes_total over X25519MLKEM768 = %v, want at least 1", got)
	}
}

package backends

import (
	"crypto/x509"
	"testing"
)

func TestSignatureCheckedOnlyForTheVeryCertificatesChecked(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	key := ecKey(t)
	req := workloadRequest(t, key, "spiffe://cluster.local/ns/default/sa/sleep")
	chain := ca.issue(t, honestTemplate(req), key.Public())
	foreign := other.issue(t, honestTemplate(req), key.Public())
	check := &SelfCheck{Leaf: chain[0], Issuer: chain[1]}
	tests := []struct {
		name  string
		resp  SignResponse
		wantK bool
	}{
		{"a leaf the backend checked with its issuer right after signing", SignResponse{Chain: chain,
			SelfChecked: check}, true},
		{"a response from a remote backend, which claims nothing", SignResponse{Chain: chain}, false},
		{"a leaf swapped after the check", SignResponse{Chain: []*x509.Certificate{foreign[0], chain[1]},
			SelfChecked: check}, false},
		{"an issuer swapped after the check", SignResponse{Chain: []*x509.Certificate{chain[0], foreign[1]},
			SelfChecked: check}, false},
		{"a chain cut to the leaf", SignResponse{Chain: chain[:1], SelfChecked: check}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.resp.SignatureChecked(); got != tt.wantK {
				t.Errorf("SignatureChecked() = %v, want %v", got, tt.wantK)
			}
		})
	}
}

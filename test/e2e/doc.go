// Package e2e holds meshca's end-to-end tests against real Istio software: Istio's own pilot-agent
// (istio-agent, run without Envoy) obtains and rotates its workload certificate from a meshca started
// in-process, and every certificate it receives is checked with crypto/x509 and go-spiffe's X.509-SVID
// verifier. TestPilotAgentThroughIstiodRA runs the same agent through istiod (pilot-discovery) in its
// registration-authority mode, with meshca as the Kubernetes CSR signer on a real kube-apiserver. The tests
// that need Istio's binaries skip under -short; catest builds and caches them.
package e2e

// Package e2e holds meshca's end-to-end tests against real Istio software: Istio's own pilot-agent
// (istio-agent, run without Envoy) obtains and rotates its workload certificate from a meshca started
// in-process, and every certificate it receives is checked with crypto/x509 and go-spiffe's X.509-SVID
// verifier. The tests that need pilot-agent skip under -short; catest builds and caches the binary.
package e2e

// Package backends defines the contract between meshca's issuance core and the certificate authorities that
// actually sign: the file backend (Istio's cacerts layout), HashiCorp Vault PKI and smallstep step-ca.
//
// A backend receives requests that meshca has already authenticated and authorised. It knows how to sign and
// where its roots are; it knows nothing of gRPC, Istio or Kubernetes, and it never decides identity: the
// SANs in a SignRequest are exactly the ones to certify. CheckLeaf is the one check, shared by every backend
// and the issuance core, that a returned leaf is exactly the workload certificate that was requested.
package backends

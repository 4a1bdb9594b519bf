// Package kubesigner makes meshca the Kubernetes signer behind istiod in its registration-authority mode
// (EXTERNAL_CA=ISTIOD_RA_KUBERNETES_API). istiod authenticates each workload, creates a certificates.k8s.io/v1
// CertificateSigningRequest for a signer name, approves it, and waits for the signer to write
// status.certificate. A Signer watches those requests and, for the signer names it is configured with, signs
// the approved ones whose requester is an allowed registration authority, through the same issuance core
// (ca.Issuer.IssueDelegated) as the gRPC path: the same CSR rules, policy, backends with failover, leaf
// check, metrics and audit. A request it refuses is marked Failed with the reason; requests for other
// signers, unapproved or denied requests, and requests already answered are left alone.
//
// Only the replica holding a Lease writes (internal/leader). Which backends sign for a signer name and
// namespace is a Router, so per-namespace routing can replace the configured mapping.
package kubesigner

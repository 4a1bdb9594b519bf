// Package policy is meshca's per-namespace signing policy: an ordered list of rules that select requests by
// namespace (exact or glob, and a Namespace label selector in a cluster), service account and the CertSigner
// metadata istio-agent sends; the first rule that matches decides, and the global issuance settings decide
// when none does. A rule sets the lifetime, the DNS names a workload may ask for (templates, checked again
// with step-ca's X.509 name policy engine), the key types, the backends that sign (in failover order), a deny
// (an incident freeze, optionally until a time) and a per-identity request rate.
//
// Engine.Decide answers one request and records every step of its reasoning in the Decision's trace, so that
// the server and `meshca policy explain` run the same code and can show why. Engine.Route is the same
// question asked with only a namespace, a service account and a signer name, for callers without a CSR
// (a Kubernetes CSR signer).
//
// The package knows nothing of gRPC, Kubernetes clients or backends: it returns backend names, and the
// namespace labels a selector needs come with the request.
package policy

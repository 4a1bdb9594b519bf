// Package admin is meshca's admin API: a small JSON-over-HTTP protocol, its handler and its client, used by
// `meshca revoke` and `meshca crl` (revocation) and `meshca policy explain --admin-addr` (what the running
// meshca would decide for a request, under the policy rules it has in force) against a running meshca.
//
// The handler does no authentication of its own: meshca serves it on a separate listener bound to loopback, so
// only processes in meshca's network namespace reach it (in Kubernetes, `kubectl exec` or `kubectl
// port-forward` into the meshca pod, both granted by RBAC). docs/revocation.md ("Admin API") explains the
// model and why the workload-facing ports never carry it. For operators elsewhere, RemoteConfig and RequireIdentity
// serve the same handler over mTLS to the client identities configured, and Client speaks to it with TLS set.
package admin

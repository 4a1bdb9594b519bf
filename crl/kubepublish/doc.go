// Package kubepublish publishes meshca's ca-crl.pem as the istio-ca-crl ConfigMap in every namespace, where
// Istio's sidecar injector mounts it (optional volume, /var/run/secrets/istio/crl) for istio-agent to hand to
// Envoy, and where ztunnel reads it.
//
// The ConfigMap follows istiod's conventions: key ca-crl.pem, label istio.io/config=true, and "" when there is
// no CRL to publish. A Publisher writes what its Source (a *crl.Publisher) gives, including "", so clearing
// works; it writes nothing until the Source is ready, so a starting replica never blanks a published CRL.
//
// Only the replica that holds a Kubernetes Lease writes. While it leads, it watches namespaces (optionally
// restricted by a label selector) and the ConfigMaps named istio-ca-crl through informers: a new namespace gets
// its ConfigMap at once, an edited one is put back, a deleted one is recreated; namespaces being deleted are
// skipped. A change of the Source reaches every namespace without polling.
package kubepublish

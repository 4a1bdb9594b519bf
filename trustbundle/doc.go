// Package trustbundle publishes meshca's trust anchors to a Kubernetes cluster.
//
// A Publisher reads the union of active roots from a Source (a *ca.Issuer: several roots during a CA rotation)
// and keeps two kinds of object equal to it:
//
//   - a ClusterTrustBundle (certificates.k8s.io/v1 on Kubernetes 1.37+, v1beta1 on 1.33–1.36, chosen by API
//     discovery) for the configured signer, named "<signer with / replaced by :>:<bundle name>", e.g.
//     "meshca.io:workload-ca:roots". Pods mount it with a clusterTrustBundle projected volume.
//   - the istio-ca-root-cert ConfigMap (key root-cert.pem) in every namespace matching a label selector, which
//     istio-agent and ztunnel read to verify meshca and their peers.
//
// The bundle follows the ClusterTrustBundle rules (KEP-3257) whatever the target: PEM CERTIFICATE blocks
// without headers, each a CA (basic constraints valid, CA bit set), no duplicates, at most 1 MiB. The order is
// deterministic (NotBefore, then SHA-256 of the DER), so an unchanged set of roots never causes a write. A set
// that breaks a rule is refused as a whole and the published one stays.
//
// Only the replica that holds a Kubernetes Lease writes (client-go leader election); the others wait to take
// over. Signing does not depend on it: every replica signs. While it leads, a replica polls the Source every
// few seconds (Backend.Roots is cheap by contract, and a rotation is a rare, human-paced event) and watches
// namespaces, the ConfigMaps named istio-ca-root-cert and its ClusterTrustBundle through informers, so a new
// namespace gets its ConfigMap within a second or so, and an object edited or deleted by someone else is put
// back.
package trustbundle

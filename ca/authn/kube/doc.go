// Package kube is meshca's authentication that asks a Kubernetes API server: service-account tokens reviewed
// by the API server (TokenReview, cached) and routed to the caller's cluster (MultiCluster, istiod-style
// remote secrets); the API server's own token keys (NewAPIServerKeys) for local JWT checks; and the node-agent
// check (NodeAgents) that lets Istio ambient's ztunnel obtain certificates for the pods on its node.
//
// NodeAgents allows an impersonation only when the authenticated caller is one of the configured node-agent
// service accounts (e.g. istio-system/ztunnel) and a Running or Pending pod of the requested namespace and
// service account is scheduled on the caller's own node, as the API server says. Pods come from a shared
// informer restricted to scheduled pods and indexed by node name, so a request costs no API call; a pod too
// new for the cache is looked up once directly.
//
// Config is the kubernetes section of meshca's configuration file and New builds what it describes. The
// client-go dependency stays here: package authn and the issuance core do not import it.
package kube

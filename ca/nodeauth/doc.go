// Package nodeauth decides whether a node agent may obtain certificates for other workloads: Istio ambient's
// ztunnel asks for the identities of the pods on its node (gRPC metadata ImpersonatedIdentity).
//
// An Authorizer allows it only when the authenticated caller is one of the configured node-agent service
// accounts (e.g. istio-system/ztunnel) and a Running or Pending pod of the requested namespace and service
// account is scheduled on the caller's own node, as the API server says. Pods come from a shared informer
// restricted to scheduled pods and indexed by node name, so a request costs no API call; a pod too new
// for the cache is looked up once directly.
package nodeauth

// Package kubescan feeds the expiry scanner from a Kubernetes cluster: Istio's workload certificate Secrets
// (istio.io/key-and-cert=true), the cacerts Secret, Secrets that opt in by label (kubernetes.io/tls ones, for
// example) and the ConfigMaps meshca publishes (istio-ca-root-cert, istio-ca-crl). A Scanner follows them with
// informers and keeps an expiry.Inventory current within a watch event of each change; List reads them once,
// for meshca inspect.
//
// The informers' cache keeps no private keys: a transform replaces each with its public half before it is
// stored, which is all the key-matches-certificate check needs.
package kubescan

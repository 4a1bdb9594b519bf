// Package authn decides who is calling meshca's CSR endpoint, without talking to Kubernetes: service-account
// tokens verified locally against their issuer's keys (JWT, StaticKeys, RemoteKeys), and client certificates
// issued by meshca itself (renewals). Config is the authn section of meshca's configuration and New builds
// the Chain it describes.
//
// An Authenticator proves who is calling; it never looks at the CSR. The issuance core then allows only
// that caller's identity in the certificate, unless an Impersonator lets a node agent (ztunnel) act for a
// workload on its node. Everything that asks the API server (TokenReview, remote clusters, the API server's
// keys, the node-agent check) lives in package ca/authn/kube, so this package and the issuance core build
// without client-go.
package authn

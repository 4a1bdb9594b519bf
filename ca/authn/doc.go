// Package authn authenticates callers of meshca's CSR endpoint: Kubernetes service-account tokens, verified
// locally against the issuer's JWKS (JWT, RemoteKeys, NewAPIServerKeys) or by the API server (TokenReview,
// cached), routed to the caller's cluster (MultiCluster, istiod-style remote secrets); and client
// certificates issued by meshca itself (renewals). Node-agent (ztunnel) impersonation is decided after
// authentication, by package ca/nodeauth.
//
// An Authenticator proves who is calling; it never looks at the CSR. The issuance core then allows only
// that caller's identity in the certificate.
package authn

// Package authn authenticates callers of meshca's CSR endpoint: Kubernetes service-account JWTs verified
// against the issuer's JWKS, client certificates issued by meshca itself (renewals), and, in later
// authenticators, TokenReview and node-agent (ztunnel) impersonation.
//
// An Authenticator proves who is calling; it never looks at the CSR. The issuance core then allows only
// that caller's identity in the certificate.
package authn

// Package csr parses and checks PKCS #10 certificate signing requests (RFC 2986) sent by Istio agents, and
// handles the SPIFFE identities (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>) that meshca
// issues.
//
// Parsing verifies the request's self-signature and the key policy; it does not decide whether the
// requested identity may be issued: that is the issuance core's policy, which compares the SANs a Request
// carries with the identity the caller proved.
package csr

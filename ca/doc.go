// Package ca is meshca's issuance core. An Issuer takes one certificate request through the whole flow:
//
//  1. authenticate the caller (package authn),
//  2. parse the CSR and verify its self-signature and key (package csr),
//  3. authorise: the CSR may ask only for the caller's own identity (Policy); then the first matching
//     per-namespace rule (package policy) decides deny, CertSigner, key type, lifetime, DNS names and the
//     backends, the global Policy deciding when no rule does (Explain runs the same decision),
//  4. sign with the rule's backends in order, failing over on ErrUnavailable (package backends),
//  5. verify the returned chain against the backend's roots, then record metrics and an audit line.
//
// It knows nothing of gRPC: ca/server is the facade that maps its errors to status codes.
package ca

// Package ca is meshca's issuance core. An Issuer takes one certificate request through the whole flow:
//
//  1. authenticate the caller (package authn),
//  2. parse the CSR and verify its self-signature and key (package csr),
//  3. authorise: the CSR may ask only for the caller's own identity; clamp the lifetime (Policy),
//  4. sign with the first available backend, failing over in order on ErrUnavailable (package backends),
//  5. verify the returned chain against the backend's roots, then record metrics and an audit line.
//
// It knows nothing of gRPC: ca/server is the facade that maps its errors to status codes.
package ca

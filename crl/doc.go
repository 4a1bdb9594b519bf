// Package crl is meshca's certificate revocation: what is revoked, what was issued to whom, and the CRLs that
// Istio's proxies check.
//
// A Registry holds the revocation state of the CAs meshca signs for, kept in a Store (a FileStore for one
// instance, crl/kubestore's Secret for replicas): the revoked certificates (serial, issuing CA, RFC 5280
// reason, revocation time, identity, notAfter), a bounded inventory of issued certificates per identity, fed
// off the signing path by Record and used by RevokeIdentity, quarantines that refuse an identity new
// certificates, and the CRL numbering. Registry.Issue builds a CA's RFC 5280 v2 CRL from that state and has it
// signed by a Signer (the file backend, or KeySigner).
//
// A Publisher keeps one current CRL for every CA of the served chains: built by the Registry where meshca
// holds the key, taken from the backend where it owns revocation (Vault, step-ca), read from files for the
// others (an offline root). Check tells whether every CA has a valid CRL, which Envoy's CRL_CHECK_ALL
// requires; the Publisher serves DER per CA and the concatenated ca-crl.pem that crl/kubepublish distributes.
//
// The package knows nothing of gRPC, Istio or Kubernetes; identities are opaque strings (SPIFFE IDs).
// docs/revocation.md describes the model for operators.
package crl

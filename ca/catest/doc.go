// Package catest holds test helpers for meshca: CAs on real crypto, CSR and token builders, and access to the
// real servers (Vault, step-ca, kube-apiserver, pilot-agent) that integration tests run against.
package catest

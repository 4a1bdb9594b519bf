// Package vault is meshca's HashiCorp Vault backend: it signs meshca's requests with Vault's PKI secrets engine
// (<mount>/sign/<role> or <mount>/sign-verbatim) through github.com/hashicorp/vault/api.
//
// meshca decides identity; Vault only signs. The backend therefore checks the SPIFFE shape of every URI SAN
// before sending (a role's allowed_uri_sans glob also matches '/', so Vault would accept ns/a/b/sa/c), turns
// off everything that lets Vault take names from the CSR, and checks the certificate Vault returns: its chain,
// rebuilt leaf → intermediates → root without duplicates, must verify to the configured trust anchors (a PEM
// bundle, or the mount's issuers pinned by SHA-256 fingerprint), and the leaf must be exactly the requested
// workload certificate (backends.CheckLeaf), which is what keeps sign-verbatim and CSR-trusting roles from
// passing on a subject, SAN or usage that the CSR smuggled in. Vault's silent TTL capping is detected and
// logged.
//
// Every call carries a deadline and the client does not retry, so an unreachable or sealed Vault yields an
// error wrapping backends.ErrUnavailable quickly, and the same Backend recovers when Vault returns. A refusal by
// Vault (4xx other than 401/403/429) wraps backends.ErrRefused.
//
// Authentication is by token, AppRole, Kubernetes auth or JWT auth (both reading a projected service-account
// token file at each login). A background goroutine renews the token or logs in again before it expires.
//
// The package vaulttest starts and configures a real Vault server for tests.
package vault

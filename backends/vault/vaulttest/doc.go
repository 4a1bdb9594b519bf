// Package vaulttest starts a real HashiCorp Vault server on loopback for tests and configures it: PKI mounts
// with a root and an intermediate CA, roles, policies, AppRole and JWT auth.
//
// The Vault binary comes from catest.Binary (built once by scripts/get-vault.sh and cached outside the clone),
// so every helper skips under -short. A server is either a dev server (in memory, ready in a fraction of a
// second, state lost on restart) or a persistent one (file storage, initialised and unsealed by the harness,
// state kept across Restart).
package vaulttest

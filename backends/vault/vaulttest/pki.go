package vaulttest

import (
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"
)

// PKIOptions shapes a PKI mount. The zero value gives meshca's recommended setup.
type PKIOptions struct {
	// MaxTTL is the role's max_ttl; default 24h.
	MaxTTL time.Duration
	// Store keeps issued certificates in Vault (no_store=false). Default: no_store=true, as recommended for
	// short-lived workload certificates.
	Store bool
	// OmitRoot imports only the intermediate into the mount, so Vault's ca_chain lacks the root (a common
	// setup, and one of the chain pitfalls the backend handles).
	OmitRoot bool
	// KeyType is the CAs' key type, "ec" (default) or "rsa".
	KeyType string
	// Role overrides or adds role parameters.
	Role map[string]any
}

// PKI is a configured mount: a root CA in RootMount, an intermediate signed by it in Mount, and a role.
type PKI struct {
	Mount, RootMount, Role string
	Root, Intermediate     *x509.Certificate
	// RootPEM is the root certificate in PEM, ready for vault.Config.RootsPEM.
	RootPEM string
	// Policy is the name of a policy that allows everything meshca does on Mount.
	Policy string
}

// AllowedURISANs is the role's allowed_uri_sans glob. Vault's glob '*' also matches '/'.
const AllowedURISANs = "spiffe://cluster.local/*"

// PKI creates a root mount and an intermediate mount on s, the intermediate signed by the root, a role named
// "mesh" that allows only URI SANs under spiffe://cluster.local/, and a policy for meshca.
func (s *Server) PKI(tb testing.TB, opts PKIOptions) *PKI {
	tb.Helper()
	if opts.MaxTTL == 0 {
		opts.MaxTTL = 24 * time.Hour
	}
	if opts.KeyType == "" {
		opts.KeyType = "ec"
	}
	bits := 256
	if opts.KeyType == "rsa" {
		bits = 2048
	}
	p := &PKI{Mount: Unique("pki"), Role: "mesh"}
	p.RootMount = p.Mount + "-root"
	for _, m := range []string{p.RootMount, p.Mount} {
		s.Write(tb, "sys/mounts/"+m, map[string]any{"type": "pki", "config": map[string]any{"max_lease_ttl": "87600h"}})
	}
	root := s.Write(tb, p.RootMount+"/root/generate/internal", map[string]any{
		"common_name": "meshca test root " + p.Mount, "key_type": opts.KeyType, "key_bits": bits, "ttl": "87600h",
		"issuer_name": "root",
	})
	p.RootPEM = root.Data["certificate"].(string)
	p.Root = ParsePEM(tb, p.RootPEM)
	csr := s.Write(tb, p.Mount+"/intermediate/generate/internal", map[string]any{
		"common_name": "meshca test intermediate " + p.Mount, "key_type": opts.KeyType, "key_bits": bits,
	})
	signed := s.Write(tb, p.RootMount+"/root/sign-intermediate", map[string]any{
		"csr": csr.Data["csr"], "format": "pem", "ttl": "43800h", "use_csr_values": false,
		"common_name": "meshca test intermediate " + p.Mount,
	})
	interPEM := signed.Data["certificate"].(string)
	p.Intermediate = ParsePEM(tb, interPEM)
	bundle := interPEM
	if !opts.OmitRoot {
		bundle += "\n" + p.RootPEM
	}
	s.Write(tb, p.Mount+"/intermediate/set-signed", map[string]any{"certificate": bundle})
	role := map[string]any{
		"allowed_uri_sans":    AllowedURISANs,
		"allow_any_name":      false,
		"allow_bare_domains":  false,
		"allow_subdomains":    false,
		"allow_localhost":     false,
		"allow_ip_sans":       false,
		"enforce_hostnames":   true,
		"require_cn":          false,
		"use_csr_common_name": false,
		"use_csr_sans":        false,
		"key_type":            "any",
		// Vault puts the role's key_usage in every leaf, whatever the key type; keyEncipherment would be wrong
		// on ECDSA keys (backends.CheckLeaf refuses it), and TLS with ECDHE needs only digitalSignature.
		"key_usage":           []string{"DigitalSignature"},
		"server_flag":         true,
		"client_flag":         true,
		"no_store":            !opts.Store,
		"ttl":                 "1h",
		"max_ttl":             fmt.Sprintf("%ds", int(opts.MaxTTL.Seconds())),
		"not_before_duration": "30s",
	}
	for k, v := range opts.Role {
		role[k] = v
	}
	s.Write(tb, p.Mount+"/roles/"+p.Role, role)
	p.Policy = "meshca-" + p.Mount
	s.Write(tb, "sys/policies/acl/"+p.Policy, map[string]any{"policy": strings.ReplaceAll(`
path "MOUNT/sign/*"                 { capabilities = ["update"] }
path "MOUNT/sign-verbatim"          { capabilities = ["update"] }
path "MOUNT/sign-verbatim/*"        { capabilities = ["update"] }
path "MOUNT/issuer/+/sign/*"        { capabilities = ["update"] }
path "MOUNT/issuer/+/sign-verbatim*" { capabilities = ["update"] }
path "MOUNT/revoke"                 { capabilities = ["update"] }
path "MOUNT/issuers"                { capabilities = ["list"] }
path "MOUNT/issuer/+/json"          { capabilities = ["read"] }
`, "MOUNT", p.Mount)})
	return p
}

// CreateToken creates a token with the given policies and TTL (0: the server default) and returns it.
func (s *Server) CreateToken(tb testing.TB, ttl time.Duration, renewable bool, policies ...string) string {
	tb.Helper()
	data := map[string]any{"policies": policies, "renewable": renewable, "no_parent": true}
	if ttl > 0 {
		data["ttl"] = fmt.Sprintf("%ds", int(ttl.Seconds()))
		data["explicit_max_ttl"] = fmt.Sprintf("%ds", int(10*ttl.Seconds()))
	}
	sec := s.Write(tb, "auth/token/create", data)
	return sec.Auth.ClientToken
}

// AppRole enables an AppRole auth mount and creates a role with the given policies and token TTL; it returns
// the mount path, role ID and a secret ID.
func (s *Server) AppRole(tb testing.TB, tokenTTL time.Duration, policies ...string) (mount, roleID, secretID string) {
	tb.Helper()
	mount = Unique("approle")
	s.Write(tb, "sys/auth/"+mount, map[string]any{"type": "approle"})
	s.Write(tb, "auth/"+mount+"/role/meshca", map[string]any{
		"token_policies": policies, "token_ttl": fmt.Sprintf("%ds", int(tokenTTL.Seconds())),
		"token_max_ttl": fmt.Sprintf("%ds", int(3*tokenTTL.Seconds())), "secret_id_ttl": "0",
	})
	roleID = s.Read(tb, "auth/"+mount+"/role/meshca/role-id").Data["role_id"].(string)
	secretID = s.Write(tb, "auth/"+mount+"/role/meshca/secret-id", nil).Data["secret_id"].(string)
	return mount, roleID, secretID
}

// JWTAuth enables a JWT auth mount that trusts tokens signed by pubPEM (a PEM public key) with the given issuer,
// audience "vault" and subject, and creates a role "meshca" with the given policies. It returns the mount path.
func (s *Server) JWTAuth(tb testing.TB, pubPEM, issuer, subject string, tokenTTL time.Duration,
	policies ...string) string {
	tb.Helper()
	mount := Unique("jwt")
	s.Write(tb, "sys/auth/"+mount, map[string]any{"type": "jwt"})
	s.Write(tb, "auth/"+mount+"/config",
		map[string]any{"jwt_validation_pubkeys": []string{pubPEM}, "bound_issuer": issuer})
	s.Write(tb, "auth/"+mount+"/role/meshca", map[string]any{
		"role_type": "jwt", "bound_audiences": []string{"vault"}, "user_claim": "sub", "bound_subject": subject,
		"token_policies": policies, "token_ttl": fmt.Sprintf("%ds", int(tokenTTL.Seconds())),
	})
	return mount
}

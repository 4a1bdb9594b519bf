// Package compliance applies Istio's COMPLIANCE_POLICY to the TLS configurations meshca serves and dials
// with, so that meshca's own connections (the gRPC CSR endpoint, the Vault and step-ca clients, the Kubernetes
// API server and JWKS/OIDC fetches) follow the same rules as the Envoys and ztunnels of the mesh. A Policy
// rewrites a tls.Config (versions, key-exchange groups, TLS 1.2 cipher suites) and adds a VerifyConnection
// check for what crypto/tls does not let a configuration choose: the TLS 1.3 cipher suite and the group a
// handshake actually used. SelfTest proves at start-up that a policy can be served at all (e.g. that ML-KEM
// is not turned off by GODEBUG), so meshca refuses to start instead of failing every handshake later.
package compliance

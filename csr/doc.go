// Package csr parses and checks PKCS #10 certificate signing requests (RFC 2986) sent by Istio agents, and
// handles the SPIFFE identities (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>) that meshca
// issues.
//
// Parsing refuses, never silently ignores, what a CSR asks for and meshca would not put in a certificate.
// A Request comes back only when the self-signature verifies with a SHA-2 or Ed25519 algorithm, the key
// passes the key policy (CheckKey), and every extension request lies within the workload profile: a
// subjectAltName of URI and DNS names (email and IP names are passed on for the issuance policy to refuse),
// keyUsage digitalSignature (and keyEncipherment for RSA keys), extKeyUsage serverAuth and clientAuth,
// basicConstraints, and a subjectKeyIdentifier. Anything else (otherName, directoryName or registeredID
// SANs, CA or signing key usages, name constraints, policies, OCSP no-check, any unknown extension or
// attribute) is refused with ErrUnsupportedRequest; a malformed request with ErrInvalidCSR; a weak signature
// algorithm or key with ErrKeyPolicy. basicConstraints cA=TRUE is reported as Request.IsCA for the issuance
// policy to refuse with its own reason.
//
// The subject is the exception: it is accepted whatever it says and never copied into a certificate, which
// carries meshca's own subject (empty, or the SPIFFE ID as CN when configured). istio-agent always sends
// O=<trust domain> and some clients a CN, so refusing subjects would break real agents, while refusing only
// "privileged-looking" ones (O=system:masters) would be a deny-list that protects nothing meshca issues.
// Request.HasSubject tells audit records that one was present.
//
// Parsing does not decide whether the requested identity may be issued: that is the issuance core's policy,
// which compares the SANs a Request carries with the identity the caller proved.
package csr

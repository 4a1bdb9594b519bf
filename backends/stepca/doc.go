// Package stepca is the backend that signs through a remote smallstep step-ca.
//
// meshca is a registration authority in front of step-ca: it authenticates and authorises each workload,
// then asks step-ca to sign with a one-time token (OTT) for a JWK or X5C provisioner. The token names exactly
// the SANs meshca decided on and the fingerprint of the CSR, so step-ca can certify nothing else; step-ca
// still applies its own policy (name constraints, TTL claims, templates) and refuses what it does not allow.
//
// The backend speaks step-ca's HTTPS API directly (/1.0/sign, /1.0/revoke, /1.0/crl, /1.0/roots,
// /1.0/intermediates, /health) rather than through github.com/smallstep/certificates/ca: that client imports
// step-ca's whole authority (database drivers, KMS, ACME), retries on its own terms and hides HTTP statuses
// behind its error type, while meshca needs a few JSON calls with its own deadlines, trust pinning and error
// mapping. Tokens are signed, and the provisioner's encrypted JWK and the X5C credential are read, with
// smallstep's go.step.sm/crypto/jose, the library step itself uses.
//
// Errors wrap backends.ErrUnavailable when step-ca cannot be reached or fails (5xx), backends.ErrRefused when
// it declines a request (4xx other than 401), ErrUnauthorized when it does not accept meshca's token (401:
// wrong key, clock skew, a replayed token) and backends.ErrBadChain when what it returns does not verify
// against the pinned roots or is not exactly the requested workload certificate (backends.CheckLeaf). A
// request step-ca could not sign as asked is refused with backends.ErrRefused before step-ca is contacted.
//
// docs/stepca.md is the operator's guide: the step-ca provisioner settings meshca needs, and the warning that
// step-ca logs whole tokens.
package stepca

// Package testpki makes keys, certificates and CRLs on real crypto for meshca's tests: the primitives that the
// test PKIs of the expiry scanner (ca/expiry/internal/certtest) and of revocation (crl/internal/crltest) are
// built from. Every helper takes testing.TB and fails the test on error.
package testpki

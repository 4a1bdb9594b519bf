// Package stepcatest runs a real smallstep step-ca on loopback for tests. It writes the whole CA itself, with
// no interactive `step ca init`: a root and an intermediate, a JWK provisioner whose private key is an
// encrypted JWE, an X5C provisioner trusting a separate registration-authority root, an empty-subject
// template that copies the token's SANs, disableSmallstepExtensions, TTL claims 1m/1h/24h, an authority-level
// URI name policy for the trust domain, a bbolt database and a CRL regenerated on every revocation.
//
// Start gives each test its own step-ca, stopped by PID in Cleanup; Launch and Stop serve a step-ca shared by
// a whole test binary from TestMain. Restart brings a stopped step-ca back on the same port with the same
// database, for outage tests. The step-ca binary comes from ca/catest.Binary (built once, cached outside the
// clone); under -short the tests that need it are skipped.
package stepcatest

// Package leader runs client-go leader election over a Kubernetes Lease for meshca's cluster publishers
// (trustbundle and crl/kubepublish), so that exactly one replica writes at a time. It owns the Lease
// settings (their checks and defaults) and the campaign loop: the elector's context outlives the caller's
// until the leader's term has stopped writing, and only then is the Lease released, so no write ever
// follows a release.
package leader

// Package meshcatest starts a real meshca in-process on loopback for integration tests: catest.StartMeshca
// over a freshly generated cacerts directory (file backend, dev token issuer, gRPC+TLS endpoint and HTTP side
// port), plus what end-to-end tests read back: the root as PEM, counters from its Prometheus registry, and
// its audit records.
//
// It is shared by meshca's end-to-end tests (test/e2e, driving Istio's pilot-agent) and by the separate Go
// module test/istioclient (driving Istio's CA client library), so both exercise the same wiring.
package meshcatest

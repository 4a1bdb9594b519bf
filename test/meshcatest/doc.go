// Package meshcatest starts a real meshca in-process on loopback for integration tests: a freshly generated
// cacerts directory behind the file backend, a dev token issuer, the gRPC+TLS endpoint and the HTTP side port,
// with its Prometheus registry and audit records readable by the test.
//
// It is shared by meshca's end-to-end tests (test/e2e, driving Istio's pilot-agent) and by the separate Go
// module test/istioclient (driving Istio's CA client library), so both exercise the same wiring.
package meshcatest

// Package loadtest is a load generator that behaves like many istio-agents calling meshca's
// IstioCertificateService: distinct identities (namespaces × service accounts), optionally several pods each
// (a bound token's pod claims per pod, so that meshca tracks each as a holder of its own trust bundle), a real
// service-account JWT per identity or pod minted by meshca's dev token issuer, a fresh key and an
// istio-agent-shaped CSR per request, and the `authorization: Bearer` and `clusterid` headers, over gRPC with
// TLS verified against the mesh root.
//
// Requests are sent open-loop: they are scheduled at a fixed rate whatever the responses do, with a bound on
// how many may be in flight; a request whose turn comes while the bound is reached is dropped and counted,
// never queued, so a slow CA shows as latency and drops instead of a lower offered rate. Every response is
// checked (chain of at least two certificates, leaf for exactly the requested SPIFFE ID and the CSR's key,
// chaining to the roots). Run returns latency percentiles, throughput and error counts by gRPC code.
//
// Command is the meshca-loadtest command line; docs/loadtest.md describes both.
package loadtest

// Package baseline measures meshca side by side with the floors it cannot go below and with istiod's own CA,
// for `make bench` (BENCHMARKS.md). It is a nested Go module so that meshca's go.mod never depends on
// istio.io/istio.
//
// Every figure is CPU time per issuance taken from process accounting (getrusage for the in-process cases,
// the server's own process_cpu_seconds_total end to end), the stable figure on a shared machine; wall-clock
// throughput and latency are reported beside it with the load average.
package baseline

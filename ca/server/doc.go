// Package server is meshca's network facade: the gRPC IstioCertificateService (istio.v1.auth) with the
// standard gRPC health service on a TLS port, and an HTTP side port with /metrics, /healthz, /readyz,
// /roots.pem and the CRL. It holds the one mapping from issuance errors to gRPC status codes.
package server

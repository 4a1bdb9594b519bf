// Package istioclient tests meshca with Istio's own CA client library
// (istio.io/istio/security/pkg/nodeagent/caclient/providers/citadel) and Istio's CSR helpers (pkiutil), the
// code istio-agent runs. It is a separate Go module so that istio.io/istio's pinned grpc, protobuf and
// Kubernetes versions never reach meshca's go.mod; run it with `cd test/istioclient && go test ./...`.
package istioclient

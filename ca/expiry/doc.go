// Package expiry watches certificate lifetimes across a mesh, so that no certificate meshca depends on or
// serves expires unnoticed.
//
// It has two halves. The Tracker records, for each workload identity meshca issues to, when its latest
// certificate expires and when it should have been renewed, and exports that as Prometheus gauges: the
// signal of a stuck agent that no periodic job can give. The scanner reads certificates and CRLs from PEM
// files and directories (any PEM, Istio's cacerts layout, istio-agent's OUTPUT_CERTS) and from the
// Kubernetes objects that package kubescan watches; it checks each set (chain, key, CRL freshness) and keeps
// the results in an Inventory that exports them as gauges and that the inspect report renders as a table
// or JSON.
//
// The package does not import client-go: Kubernetes access lives in package kubescan.
package expiry

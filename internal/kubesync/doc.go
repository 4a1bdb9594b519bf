// Package kubesync holds the pieces meshca's cluster publishers (trustbundle, crl/kubepublish) and
// Kubernetes-backed stores share to keep API objects in step with what meshca holds: informers restricted by
// label and field selectors, a rate-limited work queue with the retry rules for write conflicts, and the
// fan-out that keeps one ConfigMap in every selected namespace equal to a given content.
package kubesync

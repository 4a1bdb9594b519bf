// Package leader runs work only while this replica holds a Kubernetes Lease, so that of several meshca
// replicas exactly one writes to the API server at a time. It wraps client-go's leader election with the one
// guarantee meshca's writers need and client-go does not give on its own: when the term ends (Lease lost, or
// meshca stopping), the work has returned before the Lease is released, so no write of an old leader can
// land after another replica started leading.
//
// LeaseConfig is the configuration of a Lease, embedded by every leader-elected part (trustbundle,
// crl/kubepublish, ca/kubesigner), so that its keys, defaults and checks have one home.
package leader

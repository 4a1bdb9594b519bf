// Package kubestore keeps meshca's revocation state (crl.State) in one Kubernetes Secret, so that every
// replica revokes into and builds CRLs from the same state.
//
// The state is gzip-compressed JSON under the key revocations.json.gz. Writes are optimistic: a replica reads
// the Secret, applies its change and writes it back with the resourceVersion it read; on a conflict it
// re-reads and applies the change again. Two replicas revoking at once therefore both land, and the CRL number
// each takes is unique and increasing. Reads come from an informer on that one Secret (a metadata.name field
// selector, so RBAC can grant get, list, watch and update on the name alone), which also tells the Registry
// when another replica changed the state.
//
// A Secret that does not parse is never overwritten. A Secret deleted while meshca runs is recreated from the
// last state this replica saw.
package kubestore

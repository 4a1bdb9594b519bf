package crl

import "context"

// Store persists the State. A FileStore serves a single instance; crl/kubestore keeps the state in a
// Kubernetes Secret so that replicas share it.
//
// Implementations must be safe for concurrent use.
type Store interface {
	// Load returns a copy of the current state, which the caller owns.
	Load(ctx context.Context) (*State, error)
	// Update calls fn with a copy of the latest state. When fn reports a change, the modified state is
	// persisted atomically, unless another writer changed the stored state since it was read: then fn is
	// called again with the newer state (optimistic concurrency), so fn must derive everything from its
	// argument and may run several times. Update returns the state as stored (fn's result, with the new
	// Revision) or, when fn changed nothing, as read. An error from fn is returned as is, and nothing is
	// written. A stored state that does not parse is never overwritten (ErrCorrupt).
	Update(ctx context.Context, fn func(*State) (changed bool, err error)) (*State, error)
}

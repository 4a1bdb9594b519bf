package csr

import "slices"

// Mesh is a trust domain together with the aliases it also answers to (for example during a trust-domain
// migration). It is the one place that decides which identity a workload has in the mesh: every identity
// meshca issues is in TrustDomain, and an identity named in an alias stands for the same workload there.
type Mesh struct {
	TrustDomain string
	Aliases     []string
}

// Of returns the identity of a service account in the mesh's trust domain, unchecked (see Identity).
func (m Mesh) Of(namespace, serviceAccount string) Identity {
	return Identity{TrustDomain: m.TrustDomain, Namespace: namespace, ServiceAccount: serviceAccount}
}

// Identity returns the identity of a service account in the mesh's trust domain, or an error wrapping
// ErrInvalidID when a part is malformed (Identity.Validate).
func (m Mesh) Identity(namespace, serviceAccount string) (Identity, error) {
	id := m.Of(namespace, serviceAccount)
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// Member reports whether td is the mesh's trust domain or one of its aliases.
func (m Mesh) Member(td string) bool {
	return td == m.TrustDomain || slices.Contains(m.Aliases, td)
}

// Canonical returns id in the mesh's own trust domain, or false when id's trust domain is neither the mesh's
// nor one of its aliases.
func (m Mesh) Canonical(id Identity) (Identity, bool) {
	if !m.Member(id.TrustDomain) {
		return Identity{}, false
	}
	id.TrustDomain = m.TrustDomain
	return id, true
}

package ca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"sync"
)

// trustBundle remembers each backend's last good roots, so that a backend that cannot answer for a moment
// does not change the bundle's bytes (istio-agent pushes new trust to Envoy whenever they change), and the last
// bundle made, so that it is encoded again only when the roots change, not on every issuance.
type trustBundle struct {
	mu    sync.Mutex
	last  map[string][]*x509.Certificate
	certs []*x509.Certificate // the roots of pem, in order
	pem   []byte
}

// TrustBundle returns the workload trust bundle: every root of every backend, primary first, without
// duplicates, then the extra roots (Config.ExtraRoots), less the withdrawn ones (Config.WithdrawnRoots), as
// concatenated PEM. It is what istio-agent and ztunnel take as the mesh's trust anchors from the last element
// of a CreateCertificate response, so its bytes stay the same while the roots do. A backend that cannot list
// its roots right now contributes the roots it listed last. The bytes are shared between calls while the roots
// stay the same: callers must not modify them (appending is safe; the slice is at capacity).
func (i *Issuer) TrustBundle(ctx context.Context) ([]byte, error) {
	var all []*x509.Certificate
	var withdrawn []*x509.Certificate
	if i.withdrawn != nil {
		withdrawn = i.withdrawn()
	}
	add := func(certs []*x509.Certificate) {
		for _, c := range certs {
			if !isRoot(c, all) && !isRoot(c, withdrawn) {
				all = append(all, c)
			}
		}
	}
	for _, b := range i.backends {
		roots, err := b.Backend.Roots(ctx)
		i.bundle.mu.Lock()
		if err == nil && len(roots) > 0 {
			i.bundle.last[b.Name] = roots
		} else {
			roots = i.bundle.last[b.Name]
		}
		i.bundle.mu.Unlock()
		add(roots)
	}
	if i.extraRoots != nil {
		extra, err := i.extraRoots(ctx)
		if err != nil {
			return nil, fmt.Errorf("ca: extra trust roots: %w", err)
		}
		add(extra)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("ca: no trust roots available from any backend")
	}
	i.bundle.mu.Lock()
	defer i.bundle.mu.Unlock()
	same := func(a, b *x509.Certificate) bool { return a == b || a.Equal(b) }
	if i.bundle.pem != nil && slices.EqualFunc(all, i.bundle.certs, same) {
		return i.bundle.pem, nil
	}
	var out []byte
	for _, c := range all {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	i.bundle.certs, i.bundle.pem = all, slices.Clip(out)
	return i.bundle.pem, nil
}

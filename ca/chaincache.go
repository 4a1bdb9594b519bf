package ca

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"sync"
	"time"
)

// chainCache remembers CA chains (issuing CA up to a root) that already verified to a root, so that each
// request checks one signature, the new leaf's, instead of re-verifying links that do not change between CA
// rotations. Chains whose CAs carry name constraints always take the full path: those constrain the leaf.
type chainCache struct {
	mu    sync.Mutex
	valid map[[sha256.Size]byte]time.Time // chain digest -> earliest NotAfter in the chain
}

// maxCachedChains bounds the cache; a handful of chains are live at once even during rotations.
const maxCachedChains = 32

// verify checks that chain[0] verifies through chain[1:] to one of roots at time now. sigChecked says that the
// backend signed chain[0] in this process and verified its signature with chain[1]'s key
// (backends.SignResponse.SignatureChecked): once chain[1:] is known to verify, that signature is not
// verified again.
func (c *chainCache) verify(chain, roots []*x509.Certificate, now time.Time, sigChecked bool) error {
	leaf, issuer := chain[0], chain[1]
	h := sha256.New()
	constrained := false
	until := issuer.NotAfter
	for _, ca := range chain[1:] {
		h.Write(ca.Raw)
		constrained = constrained || hasNameConstraints(ca)
		if ca.NotAfter.Before(until) {
			until = ca.NotAfter
		}
	}
	var key [sha256.Size]byte
	copy(key[:], h.Sum(nil))
	if !constrained {
		c.mu.Lock()
		exp, ok := c.valid[key]
		c.mu.Unlock()
		if ok && now.Before(exp) {
			if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
				return errors.New("leaf is outside its validity period")
			}
			if !bytes.Equal(leaf.RawIssuer, issuer.RawSubject) {
				return errors.New("leaf issuer name does not match the issuing CA")
			}
			// The issuer is a CA allowed to sign certificates: the cache holds only chains whose issuer, these
			// very bytes, passed leaf.Verify, which checks that through CheckSignatureFrom.
			if !sigChecked {
				return leaf.CheckSignatureFrom(issuer)
			}
			return nil
		}
	}
	pool, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, ca := range chain[1 : len(chain)-1] {
		inters.AddCert(ca)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return err
	}
	if !constrained {
		c.mu.Lock()
		if c.valid == nil || len(c.valid) >= maxCachedChains {
			c.valid = map[[sha256.Size]byte]time.Time{}
		}
		c.valid[key] = until
		c.mu.Unlock()
	}
	return nil
}

func hasNameConstraints(c *x509.Certificate) bool {
	return len(c.PermittedDNSDomains)+len(c.ExcludedDNSDomains)+len(c.PermittedIPRanges)+len(c.ExcludedIPRanges)+
		len(c.PermittedEmailAddresses)+len(c.ExcludedEmailAddresses)+len(c.PermittedURIDomains)+
		len(c.ExcludedURIDomains) > 0
}

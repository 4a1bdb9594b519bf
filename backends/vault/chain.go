package vault

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/meshca/meshca/backends"
)

// maxChainLen bounds the chains the backend builds: leaf, a few intermediates and the root.
const maxChainLen = 8

// buildChain orders a chain from first (the leaf, or an issuing CA for CAChain) up to one of anchors, taking the
// intermediates from candidates in whatever order and multiplicity Vault returned them (ca_chain, issuing_ca,
// extra blocks of certificate): Vault may return the intermediate as issuing_ca, leave out the root or repeat
// entries. The result holds each certificate once, ends with the anchor, and is verified with crypto/x509 at now.
func buildChain(first *x509.Certificate, candidates, anchors []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	if len(anchors) == 0 {
		return nil, fmt.Errorf("%w: no trust anchor configured", backends.ErrBadChain)
	}
	chain := []*x509.Certificate{first}
	used := func(c *x509.Certificate) bool {
		for _, u := range chain {
			if bytes.Equal(u.Raw, c.Raw) {
				return true
			}
		}
		return false
	}
	issuerOf := func(child *x509.Certificate, pool []*x509.Certificate) *x509.Certificate {
		for _, p := range pool {
			if used(p) || !bytes.Equal(p.RawSubject, child.RawIssuer) {
				continue
			}
			if child.CheckSignatureFrom(p) == nil {
				return p
			}
		}
		return nil
	}
	if isAnchor(first, anchors) {
		return nil, fmt.Errorf("%w: the certificate to chain is itself a trust anchor", backends.ErrBadChain)
	}
	for cur := first; ; {
		if len(chain) >= maxChainLen {
			return nil, fmt.Errorf("%w: no path to a trust anchor within %d certificates", backends.ErrBadChain, maxChainLen)
		}
		if a := issuerOf(cur, anchors); a != nil {
			chain = append(chain, a)
			break
		}
		next := issuerOf(cur, candidates)
		if next == nil {
			return nil, fmt.Errorf("%w: no issuer found for %q (issuer %q) among Vault's ca_chain and the trust anchors: "+
				"check that the mount's issuer chains to the configured root", backends.ErrBadChain, cur.Subject, cur.Issuer)
		}
		chain = append(chain, next)
		cur = next
	}
	roots := x509.NewCertPool()
	for _, a := range anchors {
		roots.AddCert(a)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1 : len(chain)-1] {
		inter.AddCert(c)
	}
	if _, err := first.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("%w: %v", backends.ErrBadChain, err)
	}
	return chain, nil
}

func isAnchor(c *x509.Certificate, anchors []*x509.Certificate) bool {
	for _, a := range anchors {
		if bytes.Equal(a.Raw, c.Raw) {
			return true
		}
	}
	return false
}

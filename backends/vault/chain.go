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
func buildChain(first *x509.Certificate, candidates, anchors []*x509.Certificate, now time.Time) (
	[]*x509.Certificate, error) {
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
			return nil, fmt.Errorf("%w: no path to a trust anchor within %d certificates", backends.ErrBadChain,
				maxChainLen)
		}
		if a := issuerOf(cur, anchors); a != nil {
			chain = append(chain, a)
			break
		}
		next := issuerOf(cur, candidates)
		if next == nil {
			return nil, fmt.Errorf("%w: no issuer found for %q (issuer %q) among Vault's ca_chain and the trust "+
				"anchors: check that the mount's issuer chains to the configured root", backends.ErrBadChain,
				cur.Subject, cur.Issuer)
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

// caState is the mount's issuing chain (issuer first, anchor last), verified when fetched, with what the
// signing fast path needs.
type caState struct {
	chain   []*x509.Certificate
	anchors []*x509.Certificate
	// issuerAsRoot verifies a leaf against chain[0] alone.
	issuerAsRoot *x509.CertPool
	// fast is false when a certificate above the issuer carries name constraints, which only a full
	// verification applies to the leaf.
	fast bool
}

func newCAState(chain, anchors []*x509.Certificate) *caState {
	st := &caState{chain: chain, anchors: anchors, issuerAsRoot: x509.NewCertPool(), fast: true}
	st.issuerAsRoot.AddCert(chain[0])
	for _, c := range chain[1:] {
		constraints := len(c.PermittedDNSDomains) + len(c.ExcludedDNSDomains) + len(c.PermittedIPRanges) +
			len(c.ExcludedIPRanges) + len(c.PermittedEmailAddresses) + len(c.ExcludedEmailAddresses) +
			len(c.PermittedURIDomains) + len(c.ExcludedURIDomains)
		if c.PermittedDNSDomainsCritical || constraints > 0 {
			st.fast = false
		}
	}
	return st
}

// fastChain returns leaf followed by the known chain when leaf was issued by its first certificate and the
// whole chain is valid at now. The issuer's own path to the anchor was verified by buildChain when fetched, so
// one signature check (and x509's checks of the leaf against its issuer: validity, EKU, the issuer's name
// constraints) completes the verification.
func (st *caState) fastChain(leaf *x509.Certificate, now time.Time) ([]*x509.Certificate, bool) {
	if st == nil || !st.fast || !bytes.Equal(leaf.RawIssuer, st.chain[0].RawSubject) {
		return nil, false
	}
	for _, c := range st.chain {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return nil, false
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: st.issuerAsRoot, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, false
	}
	return append([]*x509.Certificate{leaf}, st.chain...), true
}

package crl

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Coverage is the CRL check of one CA of the served chains.
type Coverage struct {
	CA *x509.Certificate
	ID CAID
	// Index is the position in Check's crls of the CRL chosen for CA: the valid one with the highest CRL number
	// (then the latest thisUpdate), or, when none is valid, the best invalid one. -1 when none matches.
	Index int
	// Err is nil when the chosen CRL is valid, else it wraps ErrMissingCRL, ErrStaleCRL, ErrCRLNotYetValid or
	// ErrCARevoked.
	Err error
}

// CAs returns the CA certificates of chains, each once, in chain order (issuing CA first, root last). Leaves
// (certificates that are not CAs) are skipped.
func CAs(chains ...[]*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	seen := map[[sha256.Size]byte]bool{}
	for _, chain := range chains {
		for _, c := range chain {
			fp := sha256.Sum256(c.Raw)
			if c.IsCA && !seen[fp] {
				seen[fp] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// Check verifies that every CA in cas has a CRL among crls, as Envoy requires with CRL_CHECK_ALL and ztunnel
// with webpki: same issuer name, signed by the CA's key (and naming its key identifier when it has one), and
// within thisUpdate..nextUpdate at now. It also reports a CA that its issuer's chosen CRL revokes, which fails
// every certificate under it. The result has one Coverage per CA, in order; the error joins one wrapped
// sentinel per CA that is not covered, and is nil when all are.
func Check(cas []*x509.Certificate, crls []*x509.RevocationList, now time.Time) ([]Coverage, error) {
	out := make([]Coverage, len(cas))
	for i, ca := range cas {
		out[i] = choose(ca, crls, now)
	}
	for i, ca := range cas {
		if out[i].Err != nil {
			continue
		}
		for j, parent := range cas {
			if j == i || out[j].Err != nil || bytes.Equal(ca.Raw, parent.Raw) ||
				!bytes.Equal(ca.RawIssuer, parent.RawSubject) || ca.CheckSignatureFrom(parent) != nil {
				continue
			}
			for _, e := range crls[out[j].Index].RevokedCertificateEntries {
				if e.SerialNumber != nil && e.SerialNumber.Cmp(ca.SerialNumber) == 0 {
					out[i].Err = fmt.Errorf("%w: %s (%s) is revoked by %s", ErrCARevoked, ca.Subject, out[i].ID,
						parent.Subject)
				}
			}
		}
	}
	var errs []error
	for _, c := range out {
		errs = append(errs, c.Err)
	}
	return out, errors.Join(errs...)
}

func choose(ca *x509.Certificate, crls []*x509.RevocationList, now time.Time) Coverage {
	c := Coverage{CA: ca, ID: IDOf(ca), Index: -1}
	best, bestValid := -1, false
	for i, l := range crls {
		if !Matches(l, ca) {
			continue
		}
		valid := inTime(l, now) == nil
		if best < 0 || (valid && !bestValid) || (valid == bestValid && newer(l, crls[best])) {
			best, bestValid = i, valid
		}
	}
	c.Index = best
	switch {
	case best < 0:
		c.Err = fmt.Errorf("%w: %s (%s)", ErrMissingCRL, ca.Subject, c.ID)
	case !bestValid:
		c.Err = fmt.Errorf("%w: %s (%s)", inTime(crls[best], now), ca.Subject, c.ID)
	}
	return c
}

// inTime checks thisUpdate <= now < nextUpdate; a CRL without nextUpdate never goes stale.
func inTime(l *x509.RevocationList, now time.Time) error {
	switch {
	case now.Before(l.ThisUpdate):
		return fmt.Errorf("%w (thisUpdate %s)", ErrCRLNotYetValid, l.ThisUpdate.UTC().Format(time.RFC3339))
	case !l.NextUpdate.IsZero() && !now.Before(l.NextUpdate):
		return fmt.Errorf("%w (nextUpdate %s)", ErrStaleCRL, l.NextUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}

// newer orders CRLs of one CA: higher CRL number first, then later thisUpdate.
func newer(a, b *x509.RevocationList) bool {
	switch {
	case a.Number != nil && b.Number == nil:
		return true
	case a.Number != nil && b.Number != nil && a.Number.Cmp(b.Number) != 0:
		return a.Number.Cmp(b.Number) > 0
	case a.Number == nil && b.Number != nil:
		return false
	}
	return a.ThisUpdate.After(b.ThisUpdate)
}

package crl

import (
	"crypto/x509"
	"fmt"
	"time"
)

// CheckChain checks a verified chain (leaf first, root last) the way Envoy's CRL_CHECK_ALL does, against the
// CRLs published now: every certificate but the root must be covered by a current CRL of its issuer (the next
// certificate) and not listed in it. It returns nil when the chain passes, an error wrapping ErrRevoked when a
// certificate is listed, and one wrapping ErrMissingCRL, ErrStaleCRL or ErrCRLNotYetValid when an issuer has no
// current CRL (the revocation status is unknown). It is what client-certificate renewal consults.
func (p *Publisher) CheckChain(chain []*x509.Certificate) error {
	cur := p.cur.Load()
	if cur == nil {
		return fmt.Errorf("crl: %w: no CRL has been assembled yet", ErrMissingCRL)
	}
	now := p.cfg.Clock()
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		id := IDOf(issuer)
		c, ok := cur.byID[id]
		if !ok {
			return fmt.Errorf("crl: %s: %w", issuer.Subject, coverageOf(cur.report, id))
		}
		if err := inTime(c.List, now); err != nil {
			return fmt.Errorf("crl: %w: %s (%s)", err, issuer.Subject, id)
		}
		for _, e := range c.List.RevokedCertificateEntries {
			if e.SerialNumber != nil && e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				return fmt.Errorf("crl: %w: serial %s of %s, reason %s, at %s", ErrRevoked, cert.SerialNumber.Text(16),
					issuer.Subject, Reason(e.ReasonCode), e.RevocationTime.UTC().Format(time.RFC3339))
			}
		}
	}
	return nil
}

// coverageOf returns why the CA id has no published CRL, from the last report.
func coverageOf(rep Report, id CAID) error {
	for _, c := range rep.Coverage {
		if c.ID == id && c.Err != nil {
			return c.Err
		}
	}
	return fmt.Errorf("%w (%s)", ErrMissingCRL, id)
}

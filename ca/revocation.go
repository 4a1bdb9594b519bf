package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/meshca/meshca/csr"
)

// ErrQuarantined means the operator has stopped new certificates for the caller's identity until a given time
// (meshca revoke --identity ... --quarantine), for example after its key was stolen.
var ErrQuarantined = errors.New("identity quarantined")

// Revocations is what the issuance core needs of revocation: quarantines to honour before signing, and an
// inventory told of every certificate issued, so that revoking an identity finds its serials. cmd/meshca
// adapts crl.Registry to it.
type Revocations interface {
	// Quarantined reports whether identity (a SPIFFE ID) may get no new certificate at now, and until when.
	Quarantined(identity string, now time.Time) (until time.Time, ok bool)
	// Issued records a workload certificate just issued (chain leaf first). decidedAt is when the issuer
	// checked the quarantine: a revocation by identity made after it still catches this certificate. It is
	// called on the request path and must be cheap and must not block.
	Issued(identity string, chain []*x509.Certificate, decidedAt time.Time)
}

// checkQuarantine refuses target while it is quarantined.
func (i *Issuer) checkQuarantine(target csr.Identity, now time.Time) error {
	if i.revocations == nil {
		return nil
	}
	if until, ok := i.revocations.Quarantined(target.String(), now); ok {
		return fmt.Errorf("%w: %w: %s may get no certificate until %s (revoked by the CA operator)",
			ErrPermissionDenied, ErrQuarantined, target, until.UTC().Format(time.RFC3339))
	}
	return nil
}

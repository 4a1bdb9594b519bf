package ca

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/meshca/meshca/backends"
)

// Every rule about certificate lifetimes lives in this file: the policy's defaults and bounds, the clamp of a
// requested lifetime, the floor a configuration may not go below, the cap on what a request can ask for, the
// serving certificate's lifetime and the check of the lifetime a backend granted.

// MinLifetime is the shortest certificate lifetime a configuration may set (issuance.defaultTTL, minTTL,
// maxTTL, server.servingTTL) without allowShortTTLs: below it, workloads rotate so often that a mistake (a
// bare number read as nanoseconds) is likelier than an intent.
const MinLifetime = 5 * time.Minute

// MaxRequestTTL caps the lifetime a request may ask for before policy clamps it, so that a huge
// validity_duration cannot overflow a time.Duration; it is far beyond any maxTTL.
const MaxRequestTTL = 100 * 365 * 24 * time.Hour

// shortenedSlack is how much shorter than requested a backend's certificate may be before it is reported:
// backends backdate notBefore and round.
const shortenedSlack = 2 * time.Minute

// EffectiveMaxTTL is MaxTTL after defaults: the longest lifetime this policy issues.
func (p Policy) EffectiveMaxTTL() time.Duration { return p.withDefaults().MaxTTL }

// withDefaults fills the lifetimes: DefaultTTL 24h, MinTTL 1h and MaxTTL 24h, widened to take in a
// DefaultTTL set outside them.
func (p Policy) withDefaults() Policy {
	if p.DefaultTTL == 0 {
		p.DefaultTTL = 24 * time.Hour
	}
	if p.MinTTL == 0 {
		p.MinTTL = time.Hour
		if p.DefaultTTL < p.MinTTL {
			p.MinTTL = p.DefaultTTL
		}
	}
	if p.MaxTTL == 0 {
		p.MaxTTL = 24 * time.Hour
		if p.DefaultTTL > p.MaxTTL {
			p.MaxTTL = p.DefaultTTL
		}
	}
	return p
}

// lifetimeProblems reports every problem with the policy's lifetimes, after defaults.
func (p Policy) lifetimeProblems() []error {
	var errs []error
	d := p.withDefaults()
	if d.MinTTL <= 0 || d.MaxTTL < d.MinTTL {
		errs = append(errs, fmt.Errorf("policy: need 0 < minTTL (%s) <= maxTTL (%s)", d.MinTTL, d.MaxTTL))
	}
	if d.DefaultTTL < d.MinTTL || d.DefaultTTL > d.MaxTTL {
		errs = append(errs, fmt.Errorf("policy: defaultTTL %s must lie within [minTTL %s, maxTTL %s]",
			d.DefaultTTL, d.MinTTL, d.MaxTTL))
	}
	return errs
}

// lifetime decides the lifetime to issue for a requested one (0 = the default) on a policy with defaults
// applied, and says how it was adjusted ("" when it was not). Lifetimes outside [MinTTL, MaxTTL] are clamped,
// not refused: istio-agent schedules rotation from the certificate it gets, so a clamped certificate works,
// while a refusal would leave a workload with a mis-set SECRET_TTL without any certificate.
func (p Policy) lifetime(requested time.Duration) (time.Duration, string, error) {
	switch {
	case requested < 0:
		return 0, "", fmt.Errorf("%w: validity_duration %s is negative; send 0 for the default", ErrInvalidRequest,
			requested)
	case requested == 0:
		return p.DefaultTTL, "", nil
	case requested > p.MaxTTL:
		return p.MaxTTL, "clamped_to_max", nil
	case requested < p.MinTTL:
		return p.MinTTL, "raised_to_min", nil
	}
	return requested, "", nil
}

// checkServingLifetime refuses a serving certificate request without a positive lifetime; server.servingTTL
// has its own default.
func checkServingLifetime(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("ca: a serving certificate request needs a positive lifetime, not %s", ttl)
	}
	return nil
}

// noteShortened counts and logs a leaf that lives markedly shorter than requested, as when a backend caps
// lifetimes at its CA's own expiry or its role's maximum. The leaf is still issued.
func (i *Issuer) noteShortened(backend string, req *backends.SignRequest, leaf *x509.Certificate) {
	if got := leaf.NotAfter.Sub(i.clock()); req.TTL-got > shortenedSlack {
		i.m.ttlAdjusted.WithLabelValues("backend_shortened").Inc()
		i.log.Warn("backend issued a shorter lifetime than requested", "backend", backend,
			"requested", req.TTL, "granted", got.Round(time.Second), "not_after", leaf.NotAfter.UTC())
	}
}

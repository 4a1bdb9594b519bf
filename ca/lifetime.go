package ca

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/meshca/meshca/backends"
)

// The rules about certificate lifetimes live in this file: the policy's defaults and bounds, the floor a
// configuration may not go below, the cap on what a request can ask for, the serving certificate's lifetime
// and the check of the lifetime a backend granted. The clamp of a requested lifetime into [MinTTL, MaxTTL]
// is part of the policy decision (Policy.Authorize), which works on the defaults set here.

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

// WithDefaults returns p with every unset lifetime at its default, as the Issuer applies them (for
// meshca config print --defaults).
func (p Policy) WithDefaults() Policy { return p.withDefaults() }

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

// adjustedByCap is Grant.Adjusted for a lifetime cut to Config.LifetimeCap.
const adjustedByCap = "capped_by_rotation"

// capLifetime cuts the granted lifetime to Config.LifetimeCap when one is in force.
func (i *Issuer) capLifetime(g *Grant) {
	if i.lifetimeCap == nil {
		return
	}
	if c := i.lifetimeCap(); c > 0 && g.TTL > c {
		g.TTL, g.Adjusted = c, adjustedByCap
	}
}

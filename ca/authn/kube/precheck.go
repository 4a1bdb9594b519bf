package kube

import (
	"fmt"
	"strings"
	"time"

	"github.com/meshca/meshca/ca/authn"
)

// expiryLeeway is how far past its exp a token is still sent to the API server, whose clock may be behind.
const expiryLeeway = time.Minute

// precheck refuses, without asking the API server, what cannot be a live service-account token: not a
// compact JWS with one signature by an asymmetric algorithm (authn.AllowedAlgorithms), no exp, expired,
// valid longer than maxLifetime in all, or a subject that is not a service account. The API server still
// decides everything else; precheck only spares it junk.
func precheck(token string, now time.Time, maxLifetime time.Duration) error {
	c, err := authn.ParseToken(token)
	if err != nil {
		return err // wraps authn.ErrUnauthenticated
	}
	switch {
	case c.Expiry == nil:
		return fmt.Errorf("%w: token has no expiry (exp); use a bound, projected service-account token",
			authn.ErrUnauthenticated)
	case now.After(c.Expiry.Time().Add(expiryLeeway)):
		return fmt.Errorf("%w: token expired at %s", authn.ErrUnauthenticated,
			c.Expiry.Time().UTC().Format(time.RFC3339))
	case authn.TokenLifetime(c.IssuedAt, c.Expiry, now) > maxLifetime:
		return fmt.Errorf("%w: token lives longer than the %s meshca accepts (authn.maxTokenLifetime); mint a "+
			"shorter-lived projected token", authn.ErrUnauthenticated, maxLifetime)
	case !strings.HasPrefix(c.Subject, "system:serviceaccount:"):
		return fmt.Errorf("%w: token subject is not a service account (system:serviceaccount:<namespace>:<name>)",
			authn.ErrUnauthenticated)
	}
	return nil
}

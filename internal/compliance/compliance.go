package compliance

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// EnvVar is the environment variable Istio components read their compliance policy from; meshca reads the
// same one so that one setting covers the whole mesh.
const EnvVar = "COMPLIANCE_POLICY"

// Policy is a COMPLIANCE_POLICY value. The zero value places no restriction beyond Go's defaults (which
// already offer the hybrid post-quantum X25519MLKEM768 key exchange).
type Policy string

// The policies Istio defines (istio.io/istio pkg/features COMPLIANCE_POLICY).
const (
	// None is Go's defaults.
	None Policy = ""
	// PQC is TLS 1.3 only, the X25519MLKEM768 key exchange only, and the AES-GCM cipher suites only.
	PQC Policy = "pqc"
	// FIPS1402 is TLS 1.2 only, P-256 only, and ECDHE with AES-GCM suites only (Istio 1.22+).
	FIPS1402 Policy = "fips-140-2"
	// FIPS1403 is TLS 1.2 or 1.3, P-256 or P-384, and ECDHE with AES-GCM suites only (Istio 1.29+).
	FIPS1403 Policy = "fips-140-3"
)

var (
	// ErrUnknownPolicy means a COMPLIANCE_POLICY value that is none of Istio's.
	ErrUnknownPolicy = errors.New("unknown compliance policy")
	// ErrRefused means a handshake negotiated a version, group or cipher suite the policy forbids.
	ErrRefused = errors.New("TLS connection refused by the compliance policy")
	// ErrUnavailable means this process cannot serve the policy at all (for pqc: ML-KEM is disabled).
	ErrUnavailable = errors.New("compliance policy cannot be met by this process")
)

// Policies lists every policy meshca knows, the empty one first.
func Policies() []Policy { return []Policy{None, PQC, FIPS1402, FIPS1403} }

// Parse returns the Policy named s (surrounding spaces ignored), or ErrUnknownPolicy.
func Parse(s string) (Policy, error) {
	p := Policy(strings.TrimSpace(s))
	if !slices.Contains(Policies(), p) {
		if len(s) > 32 {
			s = s[:32] + "..."
		}
		return None, fmt.Errorf("%w %q: use pqc, fips-140-2, fips-140-3 or leave it empty", ErrUnknownPolicy, s)
	}
	return p, nil
}

// Resolve combines the configuration key and the COMPLIANCE_POLICY environment value: either may be empty;
// when both are set they must agree, because a policy silently weakened by the other would not be noticed.
func Resolve(configured, env string) (Policy, error) {
	c, err := Parse(configured)
	if err != nil {
		return None, err
	}
	e, err := Parse(env)
	if err != nil {
		return None, fmt.Errorf("%s: %w", EnvVar, err)
	}
	switch {
	case c == None:
		return e, nil
	case e == None || e == c:
		return c, nil
	}
	return None, fmt.Errorf("%w: the configuration says %q and %s says %q; set one or make them equal",
		ErrUnknownPolicy, c, EnvVar, e)
}

// rules is what one policy allows.
type rules struct {
	minVersion, maxVersion uint16
	groups                 []tls.CurveID
	suites12               []uint16 // TLS 1.2 suites (crypto/tls honours CipherSuites only for 1.2)
	suites13               []uint16 // TLS 1.3 suites, enforced after the handshake
}

var aesGCM13 = []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384}

var fipsSuites12 = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

func (p Policy) rules() *rules {
	switch p {
	case PQC:
		return &rules{minVersion: tls.VersionTLS13, maxVersion: tls.VersionTLS13,
			groups: []tls.CurveID{tls.X25519MLKEM768}, suites13: aesGCM13}
	case FIPS1402:
		return &rules{minVersion: tls.VersionTLS12, maxVersion: tls.VersionTLS12,
			groups: []tls.CurveID{tls.CurveP256}, suites12: fipsSuites12}
	case FIPS1403:
		return &rules{minVersion: tls.VersionTLS12, maxVersion: tls.VersionTLS13,
			groups: []tls.CurveID{tls.CurveP256, tls.CurveP384}, suites12: fipsSuites12, suites13: aesGCM13}
	}
	return nil
}

// Apply restricts c to the policy, in place, for a server or a client alike: versions, groups and TLS 1.2
// suites are set (overriding what c had), and a VerifyConnection check refusing any other version, group or
// TLS 1.3 suite runs before c's own VerifyConnection. A nil c or the None policy is left as it is.
func (p Policy) Apply(c *tls.Config) {
	r := p.rules()
	if c == nil || r == nil {
		return
	}
	c.MinVersion, c.MaxVersion = r.minVersion, r.maxVersion
	c.CurvePreferences = slices.Clone(r.groups)
	c.CipherSuites = slices.Clone(r.suites12)
	next := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := p.Check(cs); err != nil {
			return err
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
}

// Check reports whether a completed handshake is one the policy allows (ErrRefused if not).
func (p Policy) Check(cs tls.ConnectionState) error {
	r := p.rules()
	if r == nil {
		return nil
	}
	if cs.Version < r.minVersion || cs.Version > r.maxVersion {
		return fmt.Errorf("%w %s: %s negotiated", ErrRefused, p, tls.VersionName(cs.Version))
	}
	// In TLS 1.2 a client's VerifyConnection runs before the ServerKeyExchange, and a resumed session makes
	// no key exchange, so CurveID is 0 there; crypto/tls itself holds TLS 1.2 to CurvePreferences and
	// CipherSuites, which Apply sets. In TLS 1.3 the group is always known and checked here.
	unknown12 := cs.Version == tls.VersionTLS12 && cs.CurveID == 0
	if !unknown12 && !slices.Contains(r.groups, cs.CurveID) {
		return fmt.Errorf("%w %s: key exchange %s negotiated", ErrRefused, p, cs.CurveID)
	}
	suites := r.suites12
	if cs.Version == tls.VersionTLS13 {
		suites = r.suites13
	}
	if !slices.Contains(suites, cs.CipherSuite) {
		return fmt.Errorf("%w %s: cipher suite %s negotiated", ErrRefused, p, tls.CipherSuiteName(cs.CipherSuite))
	}
	return nil
}

// Clone returns a copy of c (a new empty Config when c is nil) with the policy applied.
func (p Policy) Clone(c *tls.Config) *tls.Config {
	if c == nil {
		c = &tls.Config{}
	}
	c = c.Clone()
	p.Apply(c)
	return c
}

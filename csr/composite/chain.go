package composite

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"time"
)

// VerifyChain checks that chain, leaf first and root last, is a valid certification path to one of roots at
// time now, where the CAs hold composite (or pure ML-DSA) keys: what crypto/x509's Certificate.Verify checks
// on one given path (RFC 5280, Section 6.1), which crypto/x509 cannot do for composite signatures. The rules,
// each a separate step:
//   - trust anchor: the last certificate is one of roots, byte for byte (its self-signature is not checked,
//     as crypto/x509 does not: a root is trusted because it is in roots);
//   - validity: every certificate is within its validity period at now;
//   - issuer name: every certificate's issuer is the next one's subject;
//   - signature: every certificate's signature verifies with the next one's key (VerifyCertificateSignature);
//   - CA: every certificate above the first is a CA (basicConstraints cA=true) whose keyUsage, when present,
//     holds keyCertSign;
//   - path length: every CA's pathLenConstraint allows the CAs below it (self-issued ones included);
//   - critical extensions: no certificate carries a critical extension crypto/x509 did not process;
//   - name constraints: no CA carries name constraints (refused, not ignored: this package does not apply
//     them).
//
// The leaf's names, key usages and lifetime relative to its issuer are the caller's to check (meshca's
// backends.CheckLeaf). An error wraps ErrInvalidChain and names the rule and the certificate's position.
func VerifyChain(chain, roots []*x509.Certificate, now time.Time) error {
	return verifyChain(chainRules, chain, roots, now)
}

// chainRule is one step of VerifyChain. Each is a separate function so that the tests can show every
// tampered chain is caught by its own rule and by no other.
type chainRule struct {
	name  string
	check func(chain, roots []*x509.Certificate, now time.Time) error
}

var chainRules = []chainRule{
	{"trust anchor", checkAnchor},
	{"validity", checkValidity},
	{"issuer name", checkIssuerNames},
	{"signature", checkSignatures},
	{"CA", checkCAs},
	{"path length", checkPathLen},
	{"critical extensions", checkCritical},
	{"name constraints", checkNameConstraints},
}

// maxChainLength bounds the chains VerifyChain reads; meshca's are two or three certificates long.
const maxChainLength = 8

func verifyChain(rules []chainRule, chain, roots []*x509.Certificate, now time.Time) error {
	if len(chain) < 2 || len(chain) > maxChainLength {
		return fmt.Errorf("%w: a chain needs the leaf and at least its issuer, at most %d certificates; got %d",
			ErrInvalidChain, maxChainLength, len(chain))
	}
	for i, c := range chain {
		if c == nil {
			return fmt.Errorf("%w: certificate %d is missing", ErrInvalidChain, i)
		}
	}
	for _, r := range rules {
		if err := r.check(chain, roots, now); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidChain, r.name, err)
		}
	}
	return nil
}

func checkAnchor(chain, roots []*x509.Certificate, _ time.Time) error {
	last := chain[len(chain)-1]
	for _, r := range roots {
		if r != nil && bytes.Equal(r.Raw, last.Raw) {
			return nil
		}
	}
	return fmt.Errorf("the chain ends with %q, which is not one of the %d trusted roots",
		bounded(last.Subject.String()), len(roots))
}

func checkValidity(chain, _ []*x509.Certificate, now time.Time) error {
	for i, c := range chain {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return fmt.Errorf("certificate %d is valid from %s to %s, not at %s", i,
				c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339),
				now.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func checkIssuerNames(chain, _ []*x509.Certificate, _ time.Time) error {
	for i, c := range chain[:len(chain)-1] {
		if !bytes.Equal(c.RawIssuer, chain[i+1].RawSubject) {
			return fmt.Errorf("certificate %d names issuer %q, certificate %d is %q", i, bounded(c.Issuer.String()),
				i+1, bounded(chain[i+1].Subject.String()))
		}
	}
	return nil
}

func checkSignatures(chain, _ []*x509.Certificate, _ time.Time) error {
	for i, c := range chain[:len(chain)-1] {
		key, err := ParsePKIXPublicKey(chain[i+1].RawSubjectPublicKeyInfo)
		if err != nil {
			return fmt.Errorf("key of certificate %d: %w", i+1, err)
		}
		if err := VerifyCertificateSignature(c.Raw, key); err != nil {
			return fmt.Errorf("certificate %d: %w", i, err)
		}
	}
	return nil
}

func checkCAs(chain, _ []*x509.Certificate, _ time.Time) error {
	for i, c := range chain[1:] {
		if !c.BasicConstraintsValid || !c.IsCA {
			return fmt.Errorf("certificate %d signs certificate %d but is not a CA (basicConstraints cA)", i+1, i)
		}
		if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return fmt.Errorf("certificate %d signs certificate %d but its keyUsage lacks keyCertSign", i+1, i)
		}
	}
	return nil
}

func checkPathLen(chain, _ []*x509.Certificate, _ time.Time) error {
	// The CAs below chain[i] (i >= 1) are chain[1:i]: i-1 of them. MaxPathLen is -1 when absent, and 0 with
	// MaxPathLenZero when the constraint is zero.
	for i := 1; i < len(chain); i++ {
		c := chain[i]
		limited := c.MaxPathLen > 0 || c.MaxPathLen == 0 && c.MaxPathLenZero
		if limited && i-1 > c.MaxPathLen {
			return fmt.Errorf("certificate %d allows %d CAs below it (pathLenConstraint), the chain has %d", i,
				c.MaxPathLen, i-1)
		}
	}
	return nil
}

func checkCritical(chain, _ []*x509.Certificate, _ time.Time) error {
	for i, c := range chain {
		if len(c.UnhandledCriticalExtensions) > 0 {
			return fmt.Errorf("certificate %d has critical extensions that are not processed: %v", i,
				c.UnhandledCriticalExtensions)
		}
	}
	return nil
}

func checkNameConstraints(chain, _ []*x509.Certificate, _ time.Time) error {
	for i, c := range chain[1:] {
		if len(c.PermittedDNSDomains)+len(c.ExcludedDNSDomains)+len(c.PermittedIPRanges)+len(c.ExcludedIPRanges)+
			len(c.PermittedEmailAddresses)+len(c.ExcludedEmailAddresses)+len(c.PermittedURIDomains)+
			len(c.ExcludedURIDomains) > 0 || c.PermittedDNSDomainsCritical {
			return fmt.Errorf("certificate %d carries name constraints, which composite chains do not support", i+1)
		}
	}
	return nil
}

// bounded quotes at most 160 bytes of s: names may come from a certificate made from a caller's request.
func bounded(s string) string {
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}

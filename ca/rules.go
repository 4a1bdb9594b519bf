package ca

import (
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/csr"
)

// authorize runs policy for one authenticated request: the decision, its metric and audit fields, and the
// deciding rule's per-identity rate.
func (i *Issuer) authorize(target csr.Identity, parsed *csr.Request, ttl time.Duration, certSigner string,
	rec *auditRecord) (*Grant, error) {
	a := Ask{Identity: target, CSR: parsed, TTL: ttl, CertSigner: certSigner, Now: i.clock()}
	if i.nsLabels != nil {
		if l, ok := i.nsLabels(target.Namespace); ok {
			a.NamespaceLabels = l
		}
	}
	grant, d, err := i.policy.decide(i.rules.Load(), a)
	rec.rule, rec.certSigner = d.Rule, a.CertSigner
	if d.Rule != "" {
		i.m.decisions.WithLabelValues(d.Rule, map[bool]string{true: "allow", false: "deny"}[err == nil]).Inc()
	}
	if err != nil {
		return nil, err
	}
	if r := grant.Rate; r != nil {
		if err := i.limits.allowAt("rule:"+grant.Rule+"/"+target.String(), rate.Limit(r.PerSecond),
			max(r.Burst, 1)); err != nil {
			return nil, fmt.Errorf("rule %s: %w", grant.Rule, err)
		}
	}
	return grant, nil
}

// route returns the named backends in order; nil names means every configured backend.
func (i *Issuer) route(names []string) []NamedBackend {
	if len(names) == 0 {
		return i.backends
	}
	out := make([]NamedBackend, 0, len(names))
	for _, n := range names {
		for _, b := range i.backends {
			if b.Name == n {
				out = append(out, b)
			}
		}
	}
	return out
}

func backendNames(bs []NamedBackend) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.Name)
	}
	return out
}

// CompileRules checks rules over the global issuance settings p and the configured backend names, as New
// and SetRules do, reporting every problem with its key path.
func CompileRules(p Policy, rules policy.Config, backends []string) (*policy.Engine, error) {
	return policy.New(p.withDefaults().defaults(), rules, backends)
}

// SetRules replaces the per-namespace policy rules, for a reload. Rules that fail validation are refused
// and the current ones stay. Requests in flight finish under the rules they started with.
func (i *Issuer) SetRules(rules policy.Config) error {
	e, err := CompileRules(i.policy, rules, backendNames(i.backends))
	if err != nil {
		return err
	}
	for _, name := range e.RuleNames() {
		i.m.initRule(name)
	}
	i.rules.Store(e)
	return nil
}

// Route answers which rule and backends would serve (namespace, serviceAccount, signerName) now, without a
// CSR: for signers that route by identity and signer name alone (a Kubernetes CSR signer). A refusal (a
// deny, an unknown signer) is in the Decision's Err and trace.
func (i *Issuer) Route(namespace, serviceAccount, signerName string) *policy.Decision {
	return i.rules.Load().Route(namespace, serviceAccount, signerName, i.clock())
}

// Explain answers a without issuing anything, by the same code Issue runs after authentication: the
// identity check of the CSR, then the policy rules over the global issuance settings p. backends are the
// configured backend names. It fails only when p or rules are invalid; a refusal is the Decision's Err.
func Explain(p Policy, rules policy.Config, backends []string, a Ask) (*policy.Decision, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.withDefaults()
	e, err := CompileRules(p, rules, backends)
	if err != nil {
		return nil, err
	}
	if a.Now.IsZero() {
		a.Now = time.Now()
	}
	_, d, err := p.decide(e, a)
	if err != nil {
		d.Err = err // as classified by ca (Classify), e.g. a refused name as ErrForbiddenSAN
	}
	return d, nil
}

// Explain answers a as Issue would decide it now, under the rules in force (those of New or the last SetRules)
// and without issuing anything: the same code as Explain, over the issuer's live rules. A zero a.Now is the
// issuer's clock; nil a.NamespaceLabels are looked up as Issue looks them up. When the deciding rule names no
// backends, the Decision lists every configured backend. A refusal is the Decision's Err.
func (i *Issuer) Explain(a Ask) *policy.Decision {
	if a.Now.IsZero() {
		a.Now = i.clock()
	}
	if a.NamespaceLabels == nil && i.nsLabels != nil {
		if l, ok := i.nsLabels(a.Identity.Namespace); ok {
			a.NamespaceLabels = l
		}
	}
	_, d, err := i.policy.decide(i.rules.Load(), a)
	if err != nil {
		d.Err = err
	}
	if d.Allowed && len(d.Backends) == 0 {
		d.Backends = backendNames(i.backends)
	}
	return d
}

package policy

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	namepolicy "github.com/smallstep/certificates/policy"

	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/internal/durtext"
)

var (
	// ErrDenied means a rule denies the request (an incident freeze); the rule's reason is in the message.
	ErrDenied = errors.New("denied by policy")
	// ErrUnknownSigner means the request names a CertSigner that the deciding rule does not route.
	ErrUnknownSigner = errors.New("unknown CertSigner")
	// ErrNameNotAllowed means the CSR asks for a DNS name that no template allows or a name constraint
	// refuses.
	ErrNameNotAllowed = errors.New("name not allowed by policy")
	// ErrKeyTypeNotAllowed means the deciding rule does not issue for the CSR's key type. It also wraps
	// csr.ErrKeyPolicy.
	ErrKeyTypeNotAllowed = errors.New("key type not allowed by policy")
)

// Defaults are the global issuance settings: what a request gets when no rule decides it, and what a rule
// inherits for every setting it leaves unset.
type Defaults struct {
	DefaultTTL, MinTTL, MaxTTL time.Duration
	DNSNameTemplates           []string
}

// Engine decides requests by the compiled rules. It is immutable and safe for concurrent use.
type Engine struct {
	rules []*rule
	def   *rule
}

// rule is a Rule compiled: inherited settings filled in, its deny time and name engine built.
type rule struct {
	Rule
	life      Lifetime
	templates []string
	names     *namepolicy.NamePolicyEngine
	until     time.Time
	inherited bool // the default rule
}

// New compiles c over the global issuance settings d. backends are the configured backend names that rules
// may route to. It reports every problem at once, with key paths.
func New(d Defaults, c Config, backends []string) (*Engine, error) {
	errs := []error{c.Validate(backends)}
	e := &Engine{def: &rule{Rule: Rule{Name: DefaultRule}, inherited: true,
		life:      Lifetime{Default: d.DefaultTTL, Min: d.MinTTL, Max: d.MaxTTL},
		templates: d.DNSNameTemplates}}
	for n, r := range c.Rules {
		cr := &rule{Rule: r, life: e.def.life, templates: d.DNSNameTemplates}
		if l := r.Lifetime; l != nil {
			cr.life = overlay(e.def.life, *l)
			errs = append(errs, checkLifetime(fmt.Sprintf("policy.rules[%d].lifetime", n), cr.life, e.def.life))
		}
		if r.DNSNameTemplates != nil {
			cr.templates = r.DNSNameTemplates
		}
		if r.NameConstraints != nil {
			cr.names, _ = r.NameConstraints.engine() // Validate reported its error
		}
		if r.Deny != nil && r.Deny.Until != "" {
			cr.until, _ = time.Parse(time.RFC3339, r.Deny.Until)
		}
		e.rules = append(e.rules, cr)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return e, nil
}

func overlay(base, l Lifetime) Lifetime {
	if l.Default != 0 {
		base.Default = l.Default
	}
	if l.Min != 0 {
		base.Min = l.Min
	}
	if l.Max != 0 {
		base.Max = l.Max
	}
	if base.Default > base.Max && l.Default == 0 {
		base.Default = base.Max
	}
	if base.Default < base.Min && l.Default == 0 {
		base.Default = base.Min
	}
	return base
}

func checkLifetime(key string, l, global Lifetime) error {
	var errs []error
	if l.Min <= 0 || l.Max < l.Min || l.Default < l.Min || l.Default > l.Max {
		errs = append(errs, fmt.Errorf("%s: need 0 < min (%s) <= default (%s) <= max (%s)", key, durtext.Short(l.Min),
			durtext.Short(l.Default), durtext.Short(l.Max)))
	}
	if l.Max > global.Max {
		errs = append(errs, fmt.Errorf("%s.max: %s is longer than issuance.maxTTL (%s); a rule may only narrow it",
			key, durtext.Short(l.Max), durtext.Short(global.Max)))
	}
	if l.Min < global.Min {
		errs = append(errs, fmt.Errorf("%s.min: %s is shorter than issuance.minTTL (%s); a rule may only narrow it",
			key, durtext.Short(l.Min), durtext.Short(global.Min)))
	}
	return errors.Join(errs...)
}

// RuleNames returns the rules' names in order, then DefaultRule: every value Decision.Rule can take.
func (e *Engine) RuleNames() []string {
	out := make([]string, 0, len(e.rules)+1)
	for _, r := range e.rules {
		out = append(out, r.Name)
	}
	return append(out, DefaultRule)
}

// Request is what policy needs to know of one certificate request. The identity in it has already been
// proven by authentication; policy does not check it again.
type Request struct {
	// Namespace and ServiceAccount are the identity to be issued.
	Namespace, ServiceAccount string
	// CertSigner is the request's CertSigner metadata; empty asks for no particular signer.
	CertSigner string
	// NamespaceLabels are the labels of the Namespace object; nil when unknown (outside a cluster), and then
	// no rule with a namespace selector matches.
	NamespaceLabels map[string]string
	// KeyType is the CSR's key type (csr.KeyTypes); empty when there is no CSR (Route, explain without one):
	// then the key type is not checked.
	KeyType string
	// DNSNames are the DNS SANs the CSR asks for.
	DNSNames []string
	// URI is the SPIFFE ID the certificate will carry, for URI name constraints; nil skips them.
	URI *url.URL
	// TTL is the requested lifetime; 0 asks for the default.
	TTL time.Duration
	// Now is the time of the request, for deny expiries.
	Now time.Time
}

// Decision is what policy decided for one request, and why.
type Decision struct {
	// Rule names the rule that decided: one of RuleNames.
	Rule string `json:"rule"`
	// Allowed says whether a certificate may be issued; Err says why not.
	Allowed bool  `json:"allowed"`
	Err     error `json:"-"`
	// TTL is the lifetime to issue; Adjusted says how the requested one changed ("", "clamped_to_max",
	// "raised_to_min").
	TTL      time.Duration `json:"ttl,omitempty"`
	Adjusted string        `json:"adjusted,omitempty"`
	// DNSNames are the DNS SANs to issue.
	DNSNames []string `json:"dnsNames,omitempty"`
	// Backends are the backends that sign, in failover order; nil means every configured backend in order.
	Backends []string `json:"backends,omitempty"`
	// Rate is the deciding rule's per-identity rate, nil when it sets none.
	Rate *Rate `json:"rate,omitempty"`
	// Trace is every step of the decision, in order.
	Trace []Step `json:"trace"`
}

// Step is one line of a decision's trace: what was checked, its outcome and why.
type Step struct {
	// Check is what was looked at: "rule <name>", "deny", "signer", "key type", "lifetime", "dns <name>",
	// "uri <id>", "backends".
	Check string `json:"check"`
	// Result is a short verdict: match, no match, allow, deny, skip, set.
	Result string `json:"result"`
	// Why says which setting or constraint produced the result.
	Why string `json:"why"`
}

func (d *Decision) step(check, result, why string, args ...any) {
	d.Trace = append(d.Trace, Step{Check: check, Result: result, Why: fmt.Sprintf(why, args...)})
}

func (d *Decision) refuse(err error) *Decision {
	d.Allowed, d.Err = false, err
	return d
}

// Route decides which rule and backends serve (namespace, serviceAccount, signerName), without a CSR: the
// entry point for signers that route by identity and signer name alone (a Kubernetes CSR signer). Key type,
// names and lifetime are not checked; a deny or an unknown signer is, with the trace saying why.
func (e *Engine) Route(namespace, serviceAccount, signerName string, now time.Time) *Decision {
	return e.Decide(Request{Namespace: namespace, ServiceAccount: serviceAccount, CertSigner: signerName, Now: now})
}

// Decide finds the first rule that selects req (or the default) and applies it: deny, signer, key type,
// lifetime, DNS names and name constraints, backends. The Decision's trace records each step.
func (e *Engine) Decide(req Request) *Decision {
	d := &Decision{}
	r := e.def
	for _, cand := range e.rules {
		ok, why := cand.selects(&req)
		if ok {
			d.step("rule "+cand.Name, "match", "%s", why)
			r = cand
			break
		}
		d.step("rule "+cand.Name, "no match", "%s", why)
	}
	if r == e.def {
		d.step("rule "+DefaultRule, "match", "no rule selected the request: the global issuance settings apply")
	}
	d.Rule = r.Name
	if err := r.checkDeny(d, req.Now); err != nil {
		return d.refuse(err)
	}
	if err := r.checkSigner(d, req.CertSigner); err != nil {
		return d.refuse(err)
	}
	if err := r.checkKeyType(d, req.KeyType); err != nil {
		return d.refuse(err)
	}
	r.lifetime(d, req.TTL)
	if err := r.checkNames(d, &req); err != nil {
		return d.refuse(err)
	}
	d.Backends = slices.Clone(r.Backends)
	if len(d.Backends) == 0 {
		d.step("backends", "set", "every configured backend, in configuration order")
	} else {
		d.step("backends", "set", "%s, in failover order (rule %s)", strings.Join(d.Backends, ", "), r.Name)
	}
	if r.Rate != nil {
		rt := *r.Rate
		d.Rate = &rt
		d.step("rate", "set", "%g requests/s per identity, burst %d", r.Rate.PerSecond, max(r.Rate.Burst, 1))
	}
	d.Allowed = true
	return d
}

// selects reports whether r selects req, and why (the first mismatch, or what matched).
func (r *rule) selects(req *Request) (bool, string) {
	m := r.Match
	var why []string
	if len(m.Namespaces) > 0 {
		g, ok := globMatch(m.Namespaces, req.Namespace)
		if !ok {
			return false, fmt.Sprintf("namespace %q is not in %s", bounded(req.Namespace), list(m.Namespaces))
		}
		why = append(why, fmt.Sprintf("namespace %q matches %q", req.Namespace, g))
	}
	if sel := m.NamespaceSelector; sel != nil {
		if req.NamespaceLabels == nil {
			return false, fmt.Sprintf("namespace %q: its labels are unknown (no cluster), so the selector "+
				"cannot match", bounded(req.Namespace))
		}
		if ok, why2 := sel.matches(req.NamespaceLabels); !ok {
			return false, "namespace labels: " + why2
		}
		why = append(why, "namespace labels match the selector")
	}
	if len(m.ServiceAccounts) > 0 {
		g, ok := globMatch(m.ServiceAccounts, req.ServiceAccount)
		if !ok {
			return false, fmt.Sprintf("service account %q is not in %s", bounded(req.ServiceAccount),
				list(m.ServiceAccounts))
		}
		why = append(why, fmt.Sprintf("service account %q matches %q", req.ServiceAccount, g))
	}
	if len(m.CertSigners) > 0 {
		if !slices.Contains(m.CertSigners, req.CertSigner) {
			return false, fmt.Sprintf("CertSigner %q is not in %s", bounded(req.CertSigner), list(m.CertSigners))
		}
		why = append(why, fmt.Sprintf("CertSigner %q is listed", req.CertSigner))
	}
	if len(why) == 0 {
		return true, "the rule selects every request"
	}
	return true, strings.Join(why, "; ")
}

func globMatch(globs []string, s string) (string, bool) {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return g, true
		}
	}
	return "", false
}

func list(s []string) string { return "[" + strings.Join(s, " ") + "]" }

func (r *rule) checkDeny(d *Decision, now time.Time) error {
	if r.Deny == nil {
		return nil
	}
	if !r.until.IsZero() && !now.Before(r.until) {
		d.step("deny", "skip", "the deny %q lapsed at %s", r.Deny.Reason, r.Deny.Until)
		return nil
	}
	until := ""
	if !r.until.IsZero() {
		until = " until " + r.Deny.Until
	}
	d.step("deny", "deny", "rule %s denies%s: %s", r.Name, until, r.Deny.Reason)
	return fmt.Errorf("%w: rule %s%s: %s", ErrDenied, r.Name, until, r.Deny.Reason)
}

func (r *rule) checkSigner(d *Decision, signer string) error {
	switch {
	case signer == "":
		return nil
	case slices.Contains(r.Match.CertSigners, signer):
		d.step("signer", "allow", "CertSigner %q is routed by rule %s", signer, r.Name)
		return nil
	}
	d.step("signer", "deny", "rule %s does not route CertSigner %q (no match.certSigners lists it)",
		r.Name, bounded(signer))
	return fmt.Errorf("%w %.64q: rule %s does not route it; unset ISTIO_META_CERT_SIGNER on the workload or "+
		"add a rule that lists it in match.certSigners", ErrUnknownSigner, signer, r.Name)
}

func (r *rule) checkKeyType(d *Decision, kt string) error {
	switch {
	case kt == "":
		d.step("key type", "skip", "no CSR or key type given")
		return nil
	case len(r.KeyTypes) == 0:
		d.step("key type", "allow", "%s: rule %s allows every key type meshca issues", kt, r.Name)
		return nil
	case slices.Contains(r.KeyTypes, kt):
		d.step("key type", "allow", "%s is in %s", kt, list(r.KeyTypes))
		return nil
	}
	d.step("key type", "deny", "%s is not in %s", bounded(kt), list(r.KeyTypes))
	return fmt.Errorf("%w: %w: rule %s issues only %s, the CSR has a %s key", ErrKeyTypeNotAllowed,
		csr.ErrKeyPolicy, r.Name, strings.Join(r.KeyTypes, ", "), bounded(kt))
}

// lifetime sets d.TTL: the default for 0, else the request clamped to [min, max]. Clamping rather than
// refusing keeps a workload with a mis-set SECRET_TTL working; the adjustment is reported.
func (r *rule) lifetime(d *Decision, ttl time.Duration) {
	l := r.life
	bounds := fmt.Sprintf("[%s, %s] of rule %s", durtext.Short(l.Min), durtext.Short(l.Max), r.Name)
	switch {
	case ttl <= 0:
		d.TTL = l.Default
		d.step("lifetime", "set", "%s: none requested, the default within %s", durtext.Short(l.Default), bounds)
	case ttl > l.Max:
		d.TTL, d.Adjusted = l.Max, "clamped_to_max"
		d.step("lifetime", "set", "%s: requested %s, clamped to the max of %s", durtext.Short(l.Max),
			durtext.Short(ttl), bounds)
	case ttl < l.Min:
		d.TTL, d.Adjusted = l.Min, "raised_to_min"
		d.step("lifetime", "set", "%s: requested %s, raised to the min of %s", durtext.Short(l.Min),
			durtext.Short(ttl), bounds)
	default:
		d.TTL = ttl
		d.step("lifetime", "set", "%s: as requested, within %s", durtext.Short(ttl), bounds)
	}
}

// checkNames allows each requested DNS name that a template produces for the identity and the name
// constraints accept, and checks the SPIFFE ID against URI constraints.
func (r *rule) checkNames(d *Decision, req *Request) error {
	rep := strings.NewReplacer("{ns}", req.Namespace, "{sa}", req.ServiceAccount)
	for _, name := range req.DNSNames {
		name = strings.ToLower(name)
		tmpl := ""
		for _, t := range r.templates {
			if rep.Replace(t) == name {
				tmpl = t
				break
			}
		}
		if tmpl == "" {
			d.step("dns "+bounded(name), "deny", "no template of rule %s gives it (%s)", r.Name, list(r.templates))
			return fmt.Errorf("%w: DNS SAN %.64q: no dnsNameTemplates entry of rule %s gives it for ns/%s/sa/%s",
				ErrNameNotAllowed, name, r.Name, req.Namespace, req.ServiceAccount)
		}
		if r.names != nil {
			if err := r.names.IsDNSAllowed(name); err != nil {
				d.step("dns "+name, "deny", "template %q allows it, but the name constraints refuse it: %s",
					tmpl, constraintWhy(err))
				return fmt.Errorf("%w: DNS SAN %q: rule %s's name constraints refuse it: %s", ErrNameNotAllowed,
					name, r.Name, constraintWhy(err))
			}
			d.step("dns "+name, "allow", "template %q; the name constraints accept it", tmpl)
		} else {
			d.step("dns "+name, "allow", "template %q", tmpl)
		}
		d.DNSNames = append(d.DNSNames, name)
	}
	if req.URI != nil && r.names != nil && r.NameConstraints.hasURIs() {
		if err := r.names.AreSANsAllowed([]string{req.URI.String()}); err != nil {
			d.step("uri "+req.URI.String(), "deny", "the name constraints refuse it: %s", constraintWhy(err))
			return fmt.Errorf("%w: URI SAN %s: rule %s's name constraints refuse it: %s", ErrNameNotAllowed,
				req.URI, r.Name, constraintWhy(err))
		}
		d.step("uri "+req.URI.String(), "allow", "the name constraints accept it")
	}
	return nil
}

package policy

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/meshca/meshca/csr"
)

// Config is the policy section of meshca's configuration: rules tried in order, the first match deciding.
type Config struct {
	// Rules are tried in order; the first whose match selects the request decides it. A request no rule
	// selects gets the global issuance settings (the rule named "default" in traces, metrics and audit).
	Rules []Rule `json:"rules,omitempty"`
}

// DefaultRule is the name the global issuance settings carry in traces, metrics and audit records.
const DefaultRule = "default"

// Rule selects requests and says how they are decided. Settings it leaves unset come from the global
// issuance settings.
type Rule struct {
	// Name identifies the rule in traces, metrics and audit records: a DNS label (lowercase letters, digits
	// and '-', at most 63 characters), unique, not "default".
	Name string `json:"name"`
	// Match selects the requests this rule decides.
	Match Match `json:"match"`
	// Lifetime bounds the certificates' lifetimes; it may only narrow the global issuance bounds.
	Lifetime *Lifetime `json:"lifetime,omitempty"`
	// DNSNameTemplates replace the global issuance templates: the DNS SANs a CSR may ask for, each with {ns}
	// (so that one namespace can never claim another's names) and optionally {sa}.
	DNSNameTemplates []string `json:"dnsNameTemplates,omitempty"`
	// NameConstraints are checked after the templates, with step-ca's name policy engine: a name they refuse
	// is refused even when a template allows it.
	NameConstraints *NameConstraints `json:"nameConstraints,omitempty"`
	// KeyTypes, when set, are the only key types issued (csr.KeyTypes names them, e.g. ECDSA-P256).
	KeyTypes []string `json:"keyTypes,omitempty"`
	// Backends, when set, are the backends that sign, by name, in failover order. Default: every configured
	// backend in configuration order.
	Backends []string `json:"backends,omitempty"`
	// Deny, when set, refuses every request the rule selects (until Deny.Until, when set).
	Deny *Deny `json:"deny,omitempty"`
	// Rate, when set, limits each identity the rule selects to this many requests.
	Rate *Rate `json:"rate,omitempty"`
}

// Match selects requests. Every field that is set must match; an empty Match selects every request.
type Match struct {
	// Namespaces are exact names or globs (path.Match syntax: *, ?, [a-z]); one must match.
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespaceSelector matches the labels of the caller's Namespace object. It needs a cluster: without
	// the namespace's labels (outside a cluster, or an unknown namespace) it does not match.
	NamespaceSelector *Selector `json:"namespaceSelector,omitempty"`
	// ServiceAccounts are exact names or globs; one must match.
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
	// CertSigners are the CertSigner values (ISTIO_META_CERT_SIGNER) this rule routes; one must equal the
	// request's. A rule without CertSigners also selects requests that name a signer, and then refuses them
	// as an unknown signer: a signer is honoured only by a rule that names it.
	CertSigners []string `json:"certSigners,omitempty"`
}

// Selector is a Kubernetes label selector: every MatchLabels pair and every expression must hold.
type Selector struct {
	MatchLabels      map[string]string `json:"matchLabels,omitempty"`
	MatchExpressions []Requirement     `json:"matchExpressions,omitempty"`
}

// Requirement is one label selector expression: Operator is In, NotIn, Exists or DoesNotExist.
type Requirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// Lifetime bounds certificate lifetimes: a request for 0 gets Default, others are clamped to [Min, Max].
// Unset fields come from the global issuance settings.
type Lifetime struct {
	Default time.Duration `json:"default,omitempty"`
	Min     time.Duration `json:"min,omitempty"`
	Max     time.Duration `json:"max,omitempty"`
}

// NameConstraints are step-ca allow and deny lists (github.com/smallstep/certificates/policy semantics).
type NameConstraints struct {
	Allow *Names `json:"allow,omitempty"`
	Deny  *Names `json:"deny,omitempty"`
}

// Names lists DNS domains ("example.com", "*.example.com") and URI domains (the host of a URI SAN; for the
// SPIFFE ID, its trust domain).
type Names struct {
	DNS  []string `json:"dns,omitempty"`
	URIs []string `json:"uris,omitempty"`
}

// Deny refuses the requests a rule selects: an incident freeze.
type Deny struct {
	// Reason is shown to the caller, in the audit record and in explain; required.
	Reason string `json:"reason"`
	// Until, when set, is when the deny lapses (RFC 3339, e.g. 2026-12-01T00:00:00Z); the rule's other
	// settings apply after it.
	Until string `json:"until,omitempty"`
}

// Rate limits the requests of each identity a rule selects.
type Rate struct {
	// PerSecond is the sustained rate, e.g. 0.01 for one request per 100 s.
	PerSecond float64 `json:"perSecond"`
	// Burst is how many requests may come at once; default 1.
	Burst int `json:"burst,omitempty"`
}

var ruleName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// templateChars are what a DNS name template may hold once {ns} and {sa} are taken out.
var templateChars = regexp.MustCompile(`^[a-z0-9.-]*$`)

// Validate reports every problem with c at once, each with its key path (policy.rules[1].match.namespaces[0]).
// backends are the configured backend names that rules may route to.
func (c *Config) Validate(backends []string) error {
	var errs []error
	seen := map[string]bool{}
	for n, r := range c.Rules {
		key := fmt.Sprintf("policy.rules[%d]", n)
		if !ruleName.MatchString(r.Name) || r.Name == DefaultRule {
			errs = append(errs, fmt.Errorf("%s.name: %q: use a DNS label (a-z, 0-9, '-', at most 63), not %q",
				key, bounded(r.Name), DefaultRule))
		} else if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used by an earlier rule; names must be unique", key, r.Name))
		}
		seen[r.Name] = true
		errs = append(errs, r.validate(key, backends)...)
	}
	return errors.Join(errs...)
}

func (r *Rule) validate(key string, backends []string) []error {
	var errs []error
	errs = append(errs, checkGlobs(key+".match.namespaces", r.Match.Namespaces)...)
	errs = append(errs, checkGlobs(key+".match.serviceAccounts", r.Match.ServiceAccounts)...)
	for i, s := range r.Match.CertSigners {
		if s == "" || len(s) > 253 || strings.ContainsFunc(s, func(c rune) bool { return c <= ' ' || c > '~' }) {
			errs = append(errs, fmt.Errorf("%s.match.certSigners[%d]: %q: a signer name is printable ASCII "+
				"without spaces, 1 to 253 characters", key, i, bounded(s)))
		}
	}
	if sel := r.Match.NamespaceSelector; sel != nil {
		errs = append(errs, sel.validate(key+".match.namespaceSelector")...)
	}
	for i, t := range r.DNSNameTemplates {
		k := fmt.Sprintf("%s.dnsNameTemplates[%d]", key, i)
		if !strings.Contains(t, "{ns}") {
			errs = append(errs, fmt.Errorf("%s: %q lacks {ns}: without it one namespace could claim a name "+
				"another owns; write e.g. {sa}.{ns}.svc", k, bounded(t)))
		}
		if !templateChars.MatchString(strings.NewReplacer("{ns}", "", "{sa}", "").Replace(t)) {
			errs = append(errs, fmt.Errorf("%s: %q may hold only lowercase DNS characters, {ns} and {sa} "+
				"(no wildcards)", k, bounded(t)))
		}
	}
	if nc := r.NameConstraints; nc != nil {
		if _, err := nc.engine(); err != nil {
			errs = append(errs, fmt.Errorf("%s.nameConstraints: %w", key, err))
		}
	}
	known := csr.KeyTypes()
	for i, k := range r.KeyTypes {
		if !slices.Contains(known, k) {
			errs = append(errs, fmt.Errorf("%s.keyTypes[%d]: %q is not a key type; use one of %s", key, i,
				bounded(k), strings.Join(known, ", ")))
		}
	}
	for i, b := range r.Backends {
		if !slices.Contains(backends, b) {
			errs = append(errs, fmt.Errorf("%s.backends[%d]: %q is not a configured backend (backends[].name: %s)",
				key, i, bounded(b), strings.Join(backends, ", ")))
		} else if slices.Index(r.Backends, b) != i {
			errs = append(errs, fmt.Errorf("%s.backends[%d]: %q is listed twice", key, i, b))
		}
	}
	if d := r.Deny; d != nil {
		if strings.TrimSpace(d.Reason) == "" {
			errs = append(errs, fmt.Errorf("%s.deny.reason: empty; say why (it is shown to the caller)", key))
		}
		if d.Until != "" {
			if _, err := time.Parse(time.RFC3339, d.Until); err != nil {
				errs = append(errs, fmt.Errorf("%s.deny.until: %q is not RFC 3339 (2026-12-01T00:00:00Z)",
					key, bounded(d.Until)))
			}
		}
	}
	if rt := r.Rate; rt != nil && (rt.PerSecond <= 0 || rt.Burst < 0) {
		errs = append(errs, fmt.Errorf("%s.rate: perSecond %g must be positive and burst %d not negative",
			key, rt.PerSecond, rt.Burst))
	}
	return errs
}

func checkGlobs(key string, globs []string) []error {
	var errs []error
	for i, g := range globs {
		if _, err := path.Match(g, ""); err != nil || g == "" || len(g) > 253 {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not a name or glob (*, ?, [a-z])", key, i, bounded(g)))
		}
	}
	return errs
}

func (s *Selector) validate(key string) []error {
	var errs []error
	if len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 {
		errs = append(errs, fmt.Errorf("%s: empty; set matchLabels or matchExpressions, or remove it", key))
	}
	for i, e := range s.MatchExpressions {
		k := fmt.Sprintf("%s.matchExpressions[%d]", key, i)
		if e.Key == "" {
			errs = append(errs, fmt.Errorf("%s.key: empty", k))
		}
		switch e.Operator {
		case "In", "NotIn":
			if len(e.Values) == 0 {
				errs = append(errs, fmt.Errorf("%s.values: %s needs at least one value", k, e.Operator))
			}
		case "Exists", "DoesNotExist":
			if len(e.Values) > 0 {
				errs = append(errs, fmt.Errorf("%s.values: %s takes no values", k, e.Operator))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.operator: %q: use In, NotIn, Exists or DoesNotExist", k,
				bounded(e.Operator)))
		}
	}
	return errs
}

// bounded cuts a configured or requested string for a message.
func bounded(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

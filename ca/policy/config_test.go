package policy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/policy"
)

// TestValidateNamesTheKey: every invalid setting is reported, at once, with the key path to fix.
func TestValidateNamesTheKey(t *testing.T) {
	for _, tt := range []struct {
		name string
		rule policy.Rule
		key  string
	}{
		{"a rule needs a name", policy.Rule{}, "policy.rules[0].name"},
		{"default is reserved for the global settings", policy.Rule{Name: "default"}, "policy.rules[0].name"},
		{"a broken namespace glob", policy.Rule{Name: "a", Match: policy.Match{Namespaces: []string{"[a-"}}},
			"policy.rules[0].match.namespaces[0]"},
		{"a broken service account glob", policy.Rule{Name: "a",
			Match: policy.Match{ServiceAccounts: []string{"ok", ""}}}, "policy.rules[0].match.serviceAccounts[1]"},
		{"a signer name with a space", policy.Rule{Name: "a", Match: policy.Match{CertSigners: []string{"a b"}}},
			"policy.rules[0].match.certSigners[0]"},
		{"an empty selector", policy.Rule{Name: "a", Match: policy.Match{NamespaceSelector: &policy.Selector{}}},
			"policy.rules[0].match.namespaceSelector"},
		{"an unknown selector operator", policy.Rule{Name: "a", Match: policy.Match{NamespaceSelector: &policy.Selector{
			MatchExpressions: []policy.Requirement{{Key: "k", Operator: "Equals"}}}}},
			"policy.rules[0].match.namespaceSelector.matchExpressions[0].operator"},
		{"In without values", policy.Rule{Name: "a", Match: policy.Match{NamespaceSelector: &policy.Selector{
			MatchExpressions: []policy.Requirement{{Key: "k", Operator: "In"}}}}},
			"policy.rules[0].match.namespaceSelector.matchExpressions[0].values"},
		{"a template without {ns}", policy.Rule{Name: "a", DNSNameTemplates: []string{"{sa}.svc"}},
			"policy.rules[0].dnsNameTemplates[0]"},
		{"a wildcard template", policy.Rule{Name: "a", DNSNameTemplates: []string{"*.{ns}.svc"}},
			"policy.rules[0].dnsNameTemplates[0]"},
		{"a name constraint step-ca cannot parse", policy.Rule{Name: "a", NameConstraints: &policy.NameConstraints{
			Deny: &policy.Names{DNS: []string{"a.*.com"}}}}, "policy.rules[0].nameConstraints"},
		{"an unknown key type", policy.Rule{Name: "a", KeyTypes: []string{"DSA"}}, "policy.rules[0].keyTypes[0]"},
		{"an unknown backend", policy.Rule{Name: "a", Backends: []string{"mesh", "vault"}},
			"policy.rules[0].backends[1]"},
		{"a backend listed twice", policy.Rule{Name: "a", Backends: []string{"mesh", "mesh"}},
			"policy.rules[0].backends[1]"},
		{"a deny without a reason", policy.Rule{Name: "a", Deny: &policy.Deny{}}, "policy.rules[0].deny.reason"},
		{"a deny until that is not RFC 3339", policy.Rule{Name: "a", Deny: &policy.Deny{Reason: "x",
			Until: "tomorrow"}}, "policy.rules[0].deny.until"},
		{"a zero rate", policy.Rule{Name: "a", Rate: &policy.Rate{}}, "policy.rules[0].rate"},
		{"a lifetime longer than issuance.maxTTL", policy.Rule{Name: "a",
			Lifetime: &policy.Lifetime{Max: 48 * time.Hour}}, "policy.rules[0].lifetime.max"},
		{"a lifetime shorter than issuance.minTTL", policy.Rule{Name: "a",
			Lifetime: &policy.Lifetime{Min: time.Minute}}, "policy.rules[0].lifetime.min"},
		{"a default outside the rule's bounds", policy.Rule{Name: "a",
			Lifetime: &policy.Lifetime{Default: 20 * time.Hour, Max: 8 * time.Hour}}, "policy.rules[0].lifetime"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.New(defaults, policy.Config{Rules: []policy.Rule{tt.rule}}, []string{"mesh"})
			if err == nil {
				t.Fatal("New accepted the rule")
			}
			if !strings.Contains(err.Error(), tt.key+":") {
				t.Errorf("error %q does not name %s", err, tt.key)
			}
		})
	}
}

// TestValidateReportsEveryProblem: two bad rules give two messages, and a duplicate name is one more.
func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := policy.New(defaults, policy.Config{Rules: []policy.Rule{
		{Name: "a", KeyTypes: []string{"DSA"}}, {Name: "a", Backends: []string{"nope"}}}}, []string{"mesh"})
	if err == nil {
		t.Fatal("New accepted the rules")
	}
	for _, key := range []string{"policy.rules[0].keyTypes[0]:", "policy.rules[1].name:",
		"policy.rules[1].backends[0]:"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}

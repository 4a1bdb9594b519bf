package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	namepolicy "github.com/smallstep/certificates/policy"
)

// constraintWhy is the name engine's reason, e.g. `dns "a.b" is excluded by constraint "a.b"`.
func constraintWhy(err error) string {
	var npe *namepolicy.NamePolicyError
	if errors.As(err, &npe) && npe.Detail() != "" {
		err = errors.New(npe.Detail())
	}
	if s := err.Error(); len(s) > 200 {
		return s[:200] + "..."
	}
	return err.Error()
}

// engine builds step-ca's name policy engine for nc.
func (nc *NameConstraints) engine() (*namepolicy.NamePolicyEngine, error) {
	var opts []namepolicy.NamePolicyOption
	if a := nc.Allow; a != nil {
		opts = append(opts, namepolicy.WithPermittedDNSDomains(a.DNS...),
			namepolicy.WithPermittedURIDomains(a.URIs...))
	}
	if dn := nc.Deny; dn != nil {
		opts = append(opts, namepolicy.WithExcludedDNSDomains(dn.DNS...),
			namepolicy.WithExcludedURIDomains(dn.URIs...))
	}
	return namepolicy.New(opts...)
}

func (nc *NameConstraints) hasURIs() bool {
	return (nc.Allow != nil && len(nc.Allow.URIs) > 0) || (nc.Deny != nil && len(nc.Deny.URIs) > 0)
}

// matches reports whether labels satisfy s, and why not.
func (s *Selector) matches(labels map[string]string) (bool, string) {
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		if got, ok := labels[k]; !ok || got != s.MatchLabels[k] {
			v := s.MatchLabels[k]
			return false, fmt.Sprintf("%s=%s does not hold", k, v)
		}
	}
	for _, e := range s.MatchExpressions {
		v, has := labels[e.Key]
		ok := false
		switch e.Operator {
		case "In":
			ok = has && slices.Contains(e.Values, v)
		case "NotIn":
			ok = !has || !slices.Contains(e.Values, v)
		case "Exists":
			ok = has
		case "DoesNotExist":
			ok = !has
		}
		if !ok {
			return false, fmt.Sprintf("%s %s %s does not hold", e.Key, e.Operator, list(e.Values))
		}
	}
	return true, ""
}

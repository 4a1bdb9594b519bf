package kubescan

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/meshca/meshca/ca/expiry"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// List reads once what a Scanner with cfg would follow, for meshca inspect. A list that fails (forbidden,
// unreachable) becomes a set with an unreadable problem, so the rest is still reported. Private keys are
// dropped as the Scanner drops them. cfg.Inventory is not used.
func List(ctx context.Context, cfg Config) ([]*expiry.Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Client == nil {
		return nil, errors.New("kubescan: Config.Client is nil")
	}
	seen := map[expiry.Source]bool{}
	var sets []*expiry.Set
	for _, w := range cfg.targets() {
		var o metav1.ListOptions
		w.options(&o)
		list, err := w.listWatch(cfg.Client).ListWithContext(ctx, o)
		if err == nil {
			items, xerr := meta.ExtractList(list)
			for _, item := range items {
				obj, _ := stripKeys(item)
				if set, ok := setOf(obj); ok && !seen[set.Source] {
					seen[set.Source] = true
					sets = append(sets, set)
				}
			}
			err = xerr
		}
		if err != nil {
			src := expiry.Source{Kind: expiry.KindSecret, Namespace: w.namespace, Name: "(" + w.what + ")"}
			if w.configMap {
				src.Kind = expiry.KindConfigMap
			}
			sets = append(sets, &expiry.Set{Source: src, Problems: []expiry.SourceProblem{{Source: src,
				Problem: expiry.Problem{Kind: expiry.ProblemUnreadable, Detail: bounded(err.Error())}}}})
		}
	}
	slices.SortFunc(sets, func(a, b *expiry.Set) int {
		return cmp.Or(cmp.Compare(a.Source.Kind, b.Source.Kind), cmp.Compare(a.Source.Namespace, b.Source.Namespace),
			cmp.Compare(a.Source.Name, b.Source.Name))
	})
	return sets, nil
}

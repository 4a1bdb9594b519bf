package nslabels_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/ca/policy/nslabels"
)

func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }

// TestSelectorFollowsNamespaceLabels: against a real kube-apiserver, a rule selecting compliance=pci starts to
// decide a namespace's requests once the label is set, and stops when it is removed; an unknown namespace
// has no labels, so the selector cannot match it.
func TestSelectorFollowsNamespaceLabels(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := nslabels.New(k.Client)
	if err := c.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(policy.Defaults{DefaultTTL: time.Hour, MinTTL: time.Hour, MaxTTL: time.Hour},
		policy.Config{Rules: []policy.Rule{{Name: "pci", Match: policy.Match{NamespaceSelector: &policy.Selector{
			MatchLabels: map[string]string{"compliance": "pci"}}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rule := func(ns string) string {
		labels, ok := c.Labels(ns)
		if !ok {
			labels = nil
		}
		return e.Decide(policy.Request{Namespace: ns, ServiceAccount: "a", NamespaceLabels: labels}).Rule
	}
	setLabel := func(value *string) {
		n, err := k.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		if value == nil {
			delete(n.Labels, "compliance")
		} else {
			n.Labels["compliance"] = *value
		}
		if _, err := k.Client.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wantRule := func(want string) {
		took := catest.Eventually(t, 10*time.Second, "rule "+want, func() error {
			if got := rule(ns); got != want {
				return errors.New("decided by " + got)
			}
			return nil
		})
		t.Logf("rule %s after %s", want, took)
	}
	wantRule(policy.DefaultRule)
	pci := "pci"
	setLabel(&pci)
	wantRule("pci")
	setLabel(nil)
	wantRule(policy.DefaultRule)
	if _, ok := c.Labels("no-such-namespace"); ok {
		t.Error("an unknown namespace has labels")
	}
}

package file_test

import (
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
)

// TestGenerateDefaults: without options, Generate names both CAs for "meshca" and gives the root 10 years and
// the intermediate 1 year from a minute before now; options that are set are kept.
func TestGenerateDefaults(t *testing.T) {
	g := generateWith(t, file.GenerateOptions{})
	start := g.Root.NotBefore
	if d := time.Since(start); d < time.Minute || d > 5*time.Minute {
		t.Fatalf("the root is valid from %s, want about a minute ago", start)
	}
	for _, tc := range []struct {
		name     string
		org      []string
		lifetime time.Duration
		want     time.Duration
	}{
		{"root", g.Root.Subject.Organization, g.Root.NotAfter.Sub(g.Root.NotBefore), 10 * 365 * 24 * time.Hour},
		{"intermediate", g.Intermediate.Subject.Organization, g.Intermediate.NotAfter.Sub(g.Intermediate.NotBefore),
			365 * 24 * time.Hour},
	} {
		if len(tc.org) != 1 || tc.org[0] != "meshca" || tc.lifetime != tc.want {
			t.Errorf("%s: organization %q, lifetime %s; want meshca, %s", tc.name, tc.org, tc.lifetime, tc.want)
		}
	}
	set := generateWith(t, file.GenerateOptions{Organization: "cluster.local", RootTTL: 48 * time.Hour,
		IntermediateTTL: 24 * time.Hour})
	if set.Root.Subject.Organization[0] != "cluster.local" ||
		set.Root.NotAfter.Sub(set.Root.NotBefore) != 48*time.Hour ||
		set.Intermediate.NotAfter.Sub(set.Intermediate.NotBefore) != 24*time.Hour {
		t.Fatal("set options were replaced by the defaults")
	}
}

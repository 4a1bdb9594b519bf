package file_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
)

// TestConfigValidateEdges holds the cases of Config.Validate beside the choice of source: the directories that
// need Dir, a nextDir of its own, and the bounds of the durations, each at its edge.
func TestConfigValidateEdges(t *testing.T) {
	const dir = "/etc/cacerts"
	for _, tc := range []struct {
		name string
		cfg  file.Config
		ok   bool
	}{
		{"mldsaDir beside dir is valid", file.Config{Dir: dir, MLDSADir: "/etc/mldsa"}, true},
		{"mldsaDir beside a Secret is refused", file.Config{Secret: "istio-system/cacerts", MLDSADir: "/etc/mldsa"},
			false},
		{"compositeDir beside dir is valid", file.Config{Dir: dir, CompositeDir: "/etc/composite"}, true},
		{"compositeDir beside a Secret is refused",
			file.Config{Secret: "istio-system/cacerts", CompositeDir: "/etc/composite"}, false},
		{"a nextDir of its own is valid", file.Config{Dir: dir, NextDir: "/etc/next"}, true},
		{"nextDir equal to mldsaDir is refused",
			file.Config{Dir: dir, MLDSADir: "/etc/mldsa", NextDir: "/etc/mldsa"}, false},
		{"nextDir equal to compositeDir is refused",
			file.Config{Dir: dir, CompositeDir: "/etc/composite", NextDir: "/etc/composite"}, false},
		{"a zero secretSyncTimeout (the default) is valid", file.Config{Dir: dir, SecretSyncTimeout: 0}, true},
		{"a negative secretSyncTimeout is refused", file.Config{Dir: dir, SecretSyncTimeout: -time.Nanosecond},
			false},
		{"a zero reloadInterval (the default) is valid", file.Config{Dir: dir, ReloadInterval: 0}, true},
		{"a negative reloadInterval is refused", file.Config{Dir: dir, ReloadInterval: -time.Nanosecond}, false},
		{"a backdate of 1h is valid", file.Config{Dir: dir, Backdate: time.Hour}, true},
		{"a backdate past 1h is refused", file.Config{Dir: dir, Backdate: time.Hour + time.Nanosecond}, false},
		{"a negative backdate is refused", file.Config{Dir: dir, Backdate: -time.Nanosecond}, false},
		{"a distribution point that is not a URL is refused",
			file.Config{Dir: dir, CRLDistributionPoints: []string{"not a url"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	d := file.Config{Dir: "/etc/cacerts"}.WithDefaults()
	if d.ReloadInterval != 5*time.Second || d.Backdate != 30*time.Second || d.SecretSyncTimeout != 30*time.Second ||
		d.Clock == nil || d.Logger == nil {
		t.Fatalf("defaults: reloadInterval %s, backdate %s, secretSyncTimeout %s, clock set %t, logger set %t",
			d.ReloadInterval, d.Backdate, d.SecretSyncTimeout, d.Clock != nil, d.Logger != nil)
	}
	set := file.Config{Dir: "/etc/cacerts", ReloadInterval: time.Minute, Backdate: time.Second,
		SecretSyncTimeout: time.Hour}.WithDefaults()
	if set.ReloadInterval != time.Minute || set.Backdate != time.Second || set.SecretSyncTimeout != time.Hour {
		t.Fatalf("set values were replaced: %s, %s, %s", set.ReloadInterval, set.Backdate, set.SecretSyncTimeout)
	}
}

// TestReloadOfUnchangedFilesActivatesNothing: a reload that finds the same files reports no new CA and
// counts no activation.
func TestReloadOfUnchangedFilesActivatesNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := catest.FileBackend(t, writeDir(t, generate(t)), reg)
	for range 2 {
		if changed, err := b.Reload(); changed || err != nil {
			t.Fatalf("Reload of unchanged files = %t, %v; want false, nil", changed, err)
		}
	}
	if n := testutil.ToFloat64(reloadCounter(t, reg, "success")); n != 0 {
		t.Fatalf("%v activations counted for unchanged files", n)
	}
}

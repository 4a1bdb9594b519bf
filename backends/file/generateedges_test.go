package file_test

import (
	"bytes"
	"os"
	"path/filepath"
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

// TestGenerateWritesTheRootCRLAndLimitsThePath: with RootCRL, WriteDir writes the root's CRL as ca-crl.pem, and
// the intermediate may sign no CA (path length 0) while the root may sign one level.
func TestGenerateWritesTheRootCRLAndLimitsThePath(t *testing.T) {
	g := generateWith(t, file.GenerateOptions{RootCRL: true})
	got, err := os.ReadFile(filepath.Join(writeDir(t, g), file.CRLFile))
	if err != nil || len(g.CRLPEM) == 0 || !bytes.Equal(got, g.CRLPEM) {
		t.Fatalf("ca-crl.pem = %d bytes (%v), want the root's CRL of %d bytes", len(got), err, len(g.CRLPEM))
	}
	if in := g.Intermediate; in.MaxPathLen != 0 || !in.MaxPathLenZero {
		t.Errorf("intermediate path length %d (zero set %t), want 0", in.MaxPathLen, in.MaxPathLenZero)
	}
	if g.Root.MaxPathLen != 1 {
		t.Errorf("root path length %d, want 1", g.Root.MaxPathLen)
	}
}

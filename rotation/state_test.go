package rotation_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/rotation"
)

func genCA(t *testing.T) *file.Generated {
	t.Helper()
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func prepared(t *testing.T, now time.Time) *rotation.State {
	t.Helper()
	return at(t, rotation.PhasePublishing, false, genCA(t).Root, genCA(t).Root, now)
}

func TestStateSurvivesSaveAndLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rotation.json")
	s, err := rotation.Load(path)
	if err != nil || s.Phase != rotation.PhaseIdle {
		t.Fatalf("Load of a missing file: %v, %v; want idle", s, err)
	}
	s = prepared(t, time.Now())
	if err := rotation.Save(path, s); err != nil {
		t.Fatal(err)
	}
	got, err := rotation.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Phase != s.Phase || got.Generation != s.Generation || got.NextRoot != s.NextRoot {
		t.Fatalf("loaded %+v, want %+v", got, s)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("Save left %d files, want only the state", len(entries))
	}
}

func TestParseStateRefusesBadFiles(t *testing.T) {
	cases := []struct{ name, data string }{
		{"an unknown phase", `{"version":2,"phase":"draining"}`},
		{"a prepared state without roots", `{"version":1,"phase":"prepared"}`},
		{"a staged state without roots", `{"version":2,"phase":"staged"}`},
		{"a paused idle state", `{"version":2,"phase":"idle","paused":true}`},
		{"a negative lifetime", `{"version":2,"phase":"idle","maxLeafLifetime":"-1h"}`},
		{"another version", `{"version":3,"phase":"idle"}`},
		{"an unknown key", `{"version":1,"phase":"idle","nextRoots":""}`},
		{"a root that is not PEM", `{"version":1,"phase":"idle","nextRoot":"junk"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := rotation.ParseState([]byte(tc.data)); err == nil {
				t.Fatal("ParseState accepted it")
			}
		})
	}
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"phase":"idle"}`))
	f.Add([]byte(`{"version":1,"phase":"prepared",` +
		`"nextRoot":"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := rotation.ParseState(data)
		if err != nil {
			return
		}
		if _, err := s.ExtraRoots(); err != nil {
			t.Fatalf("a parsed state has unusable roots: %v", err)
		}
	})
}

func FuzzParseProgress(f *testing.F) {
	f.Add([]byte(`{"generation":1,"phase":"prepared","holders":2,"holdingNext":1,"complete":true}`))
	f.Add([]byte(`{"phase":"activated","holders":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := rotation.ParseProgress(data)
		if err != nil {
			return
		}
		// A parsed report never opens a gate with more workloads holding the root than there are.
		s := &rotation.State{Phase: p.Phase, NextRoot: "x"}
		if p.Phase == rotation.PhasePublishing && s.Gate(p) == nil && (!p.Complete || p.HoldingNext != p.Holders) {
			t.Fatalf("gate open for %+v", p)
		}
	})
}

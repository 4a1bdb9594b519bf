package rotation_test

import (
	"errors"
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
	s := rotation.Idle()
	if err := s.Prepare(genCA(t).Root, genCA(t).Root, now); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPrepareChecksTheRoots(t *testing.T) {
	now := time.Now()
	g := genCA(t)
	cases := []struct {
		name      string
		next, old func() *file.Generated
		want      error
	}{
		{name: "a fresh root other than the one in use is accepted", next: func() *file.Generated { return genCA(t) },
			old: func() *file.Generated { return g }},
		{name: "the root in use is refused as the next root", next: func() *file.Generated { return g },
			old: func() *file.Generated { return g }, want: rotation.ErrInvalidRoot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := rotation.Idle()
			err := s.Prepare(tc.next().Root, tc.old().Root, now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Prepare: %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("an intermediate is refused as the next root", func(t *testing.T) {
		s := rotation.Idle()
		if err := s.Prepare(g.Intermediate, genCA(t).Root, now); !errors.Is(err, rotation.ErrInvalidRoot) {
			t.Fatalf("Prepare: %v, want ErrInvalidRoot", err)
		}
	})
	t.Run("a second prepare is refused", func(t *testing.T) {
		s := prepared(t, now)
		if err := s.Prepare(genCA(t).Root, g.Root, now); !errors.Is(err, rotation.ErrWrongPhase) {
			t.Fatalf("Prepare: %v, want ErrWrongPhase", err)
		}
	})
}

func TestExtraRootsKeepBothRootsUntilTheEnd(t *testing.T) {
	now := time.Now()
	s := prepared(t, now)
	next, old, err := s.Roots()
	if err != nil {
		t.Fatal(err)
	}
	check := func(want ...string) {
		t.Helper()
		extra, err := s.ExtraRoots()
		if err != nil {
			t.Fatal(err)
		}
		if len(extra) != len(want) {
			t.Fatalf("%s: %d extra roots, want %v", s.Phase, len(extra), want)
		}
		for i, w := range want {
			if c := map[string]string{"next": s.NextRoot, "old": s.OldRoot}[w]; c == "" ||
				(w == "next" && !extra[i].Equal(next)) || (w == "old" && !extra[i].Equal(old)) {
				t.Fatalf("%s: extra root %d is not the %s root", s.Phase, i, w)
			}
		}
	}
	check("next")
	p := &rotation.Progress{Generation: s.Generation, Phase: s.Phase, At: now, Complete: true}
	if err := s.Advance(p, now, time.Minute, false, ""); err != nil {
		t.Fatal(err)
	}
	check("next", "old")
	p = &rotation.Progress{Generation: s.Generation, Phase: s.Phase, At: now, Complete: true}
	if err := s.Advance(p, now, time.Minute, false, ""); err != nil {
		t.Fatal(err)
	}
	check()
	if s.Phase != rotation.PhaseIdle || s.Generation != 3 || len(s.History) != 3 {
		t.Fatalf("after a full rotation: %s, generation %d, %d transitions", s.Phase, s.Generation, len(s.History))
	}
}

func TestAdvanceGates(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name   string
		p      func(s *rotation.State) *rotation.Progress
		force  bool
		reason string
		want   error
	}{
		{name: "every workload holding the next root opens the gate", p: func(s *rotation.State) *rotation.Progress {
			return &rotation.Progress{Generation: s.Generation, Phase: s.Phase, At: now, Complete: true,
				Holders: 3, HoldingNext: 3}
		}},
		{name: "one workload without the next root closes it", p: func(s *rotation.State) *rotation.Progress {
			return &rotation.Progress{Generation: s.Generation, Phase: s.Phase, At: now, Complete: true,
				Holders: 3, HoldingNext: 2}
		}, want: rotation.ErrGateClosed},
		{name: "an incomplete tracker closes it", p: func(s *rotation.State) *rotation.Progress {
			return &rotation.Progress{Generation: s.Generation, Phase: s.Phase, At: now}
		}, want: rotation.ErrGateClosed},
		{name: "no report is stale", p: func(*rotation.State) *rotation.Progress { return nil },
			want: rotation.ErrStaleProgress},
		{name: "a report for another generation is stale", p: func(s *rotation.State) *rotation.Progress {
			return &rotation.Progress{Generation: s.Generation - 1, Phase: s.Phase, At: now, Complete: true}
		}, want: rotation.ErrStaleProgress},
		{name: "an old report is stale", p: func(s *rotation.State) *rotation.Progress {
			return &rotation.Progress{Generation: s.Generation, Phase: s.Phase, At: now.Add(-time.Hour),
				Complete: true}
		}, want: rotation.ErrStaleProgress},
		{name: "force without a reason is refused", p: func(*rotation.State) *rotation.Progress { return nil },
			force: true, want: rotation.ErrGateClosed},
		{name: "force with a reason passes a closed gate", p: func(*rotation.State) *rotation.Progress { return nil },
			force: true, reason: "drill"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := prepared(t, now)
			err := s.Advance(tc.p(s), now, time.Minute, tc.force, tc.reason)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Advance: %v, want %v", err, tc.want)
			}
			if wantPhase := map[bool]rotation.Phase{true: rotation.PhaseActivated,
				false: rotation.PhasePrepared}[tc.want == nil]; s.Phase != wantPhase {
				t.Fatalf("phase %s, want %s", s.Phase, wantPhase)
			}
		})
	}
}

func TestActivatedNeedsEveryLeafFromTheNextRoot(t *testing.T) {
	now := time.Now()
	s := prepared(t, now)
	if err := s.Advance(nil, now, time.Minute, true, "test"); err != nil {
		t.Fatal(err)
	}
	p := &rotation.Progress{Generation: s.Generation, Phase: s.Phase, At: now, Complete: true, Holders: 2,
		HoldingNext: 2, LeafNext: 1}
	if err := s.Advance(p, now, time.Minute, false, ""); !errors.Is(err, rotation.ErrGateClosed) {
		t.Fatalf("Advance with a leaf from the old root: %v, want ErrGateClosed", err)
	}
	if err := s.Abort(now, ""); !errors.Is(err, rotation.ErrWrongPhase) {
		t.Fatalf("Abort when activated: %v, want ErrWrongPhase", err)
	}
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
		{"an unknown phase", `{"version":1,"phase":"publishing"}`},
		{"a prepared state without roots", `{"version":1,"phase":"prepared"}`},
		{"another version", `{"version":2,"phase":"idle"}`},
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
		if p.Phase == rotation.PhasePrepared && p.Gate() == nil && (!p.Complete || p.HoldingNext != p.Holders) {
			t.Fatalf("gate open for %+v", p)
		}
	})
}

package rotation_test

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/rotation"
)

// at returns a state at phase, reached from idle by ordinary steps (forced past the gates).
func at(t *testing.T, phase rotation.Phase, paused bool, next, old *x509.Certificate,
	now time.Time) *rotation.State {
	t.Helper()
	s := rotation.Idle()
	if phase == rotation.PhaseIdle {
		return s
	}
	if _, err := s.Apply(rotation.Change{Action: rotation.ActionStart, Next: next, Old: old,
		MaxLeafLifetime: time.Hour}, nil, now); err != nil {
		t.Fatal(err)
	}
	for s.Phase != phase {
		if _, err := s.Apply(rotation.Change{Action: rotation.ActionAdvance, Force: true, Reason: "test"}, nil,
			now); err != nil {
			t.Fatalf("advance from %s: %v", s.Phase, err)
		}
	}
	if paused {
		if _, err := s.Apply(rotation.Change{Action: rotation.ActionPause}, nil, now); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// reissue returns old's root re-issued with the same subject and key and new dates.
func reissue(t *testing.T, g *file.Generated) *x509.Certificate {
	t.Helper()
	tmpl := *g.Root
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Minute), time.Now().Add(10*365*24*time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, g.RootKey.Public(), g.RootKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Progress reports for the gates: every holder has the next root in its bundle (bundle), every leaf chains to
// it (leaf), some lag (lagging), or the tracker has not seen a full lifetime (incomplete).
func report(s *rotation.State, kind string, now time.Time) *rotation.Progress {
	p := &rotation.Progress{Generation: s.Generation, Phase: s.Phase, At: now, Complete: true, Holders: 4}
	switch kind {
	case "bundle":
		p.HoldingNext = 4
	case "leaf":
		p.HoldingNext, p.LeafNext = 4, 4
	case "lagging":
		p.HoldingNext, p.LeafNext = 3, 1
		p.Laggards = []rotation.Laggard{{Identity: "spiffe://cluster.local/ns/a/sa/late", NotAfter: now}}
	case "incomplete":
		p.HoldingNext, p.LeafNext, p.Complete = 4, 4, false
	case "none":
		return nil
	}
	return p
}

func TestEveryTransition(t *testing.T) {
	now := time.Now()
	oldCA, newCA := genCA(t), genCA(t)
	const (
		idle, staged, publishing = rotation.PhaseIdle, rotation.PhaseStaged, rotation.PhasePublishing
		activated, retiring      = rotation.PhaseActivated, rotation.PhaseRetiring
		start, advance, rollback = rotation.ActionStart, rotation.ActionAdvance, rotation.ActionRollback
		pause, resume            = rotation.ActionPause, rotation.ActionResume
	)
	cases := []struct {
		name     string
		from     rotation.Phase
		paused   bool
		action   rotation.Action
		force    bool
		progress string
		to       rotation.Phase // the phase after, when want is nil
		want     error
	}{
		{"an idle rotation starts and is staged", idle, false, start, false, "none", staged, nil},
		{"an idle rotation does not advance", idle, false, advance, false, "leaf", "", rotation.ErrWrongPhase},
		{"an idle rotation has nothing to roll back", idle, false, rollback, false, "leaf", "",
			rotation.ErrWrongPhase},
		{"an idle rotation cannot be paused", idle, false, pause, false, "none", "", rotation.ErrWrongPhase},
		{"an idle rotation cannot be resumed", idle, false, resume, false, "none", "", rotation.ErrWrongPhase},
		{"a staged rotation does not start again", staged, false, start, false, "none", "", rotation.ErrWrongPhase},
		{"a staged rotation publishes without a report", staged, false, advance, false, "none", publishing, nil},
		{"a staged rotation rolls back to idle", staged, false, rollback, false, "none", idle, nil},
		{"a publishing rotation waits for every bundle", publishing, false, advance, false, "lagging", "",
			rotation.ErrGateClosed},
		{"a publishing rotation waits for a complete tracker", publishing, false, advance, false, "incomplete", "",
			rotation.ErrGateClosed},
		{"a publishing rotation without a report does not advance", publishing, false, advance, false, "none", "",
			rotation.ErrStaleProgress},
		{"a publishing rotation activates once every bundle holds the next root", publishing, false, advance,
			false, "bundle", activated, nil},
		{"a forced publishing rotation activates past a closed gate", publishing, false, advance, true, "lagging",
			activated, nil},
		{"a publishing rotation rolls back while no leaf chains to the next root", publishing, false, rollback,
			false, "bundle", staged, nil},
		{"a publishing rotation does not roll back over leaves from the new CA", publishing, false, rollback,
			false, "leaf", "", rotation.ErrGateClosed},
		{"an activated rotation waits for every leaf", activated, false, advance, false, "bundle", "",
			rotation.ErrGateClosed},
		{"an activated rotation retires once every leaf chains to the next root", activated, false, advance,
			false, "leaf", retiring, nil},
		{"an activated rotation rolls back to publishing", activated, false, rollback, false, "lagging",
			publishing, nil},
		{"a retiring rotation waits for every leaf", retiring, false, advance, false, "lagging", "",
			rotation.ErrGateClosed},
		{"a retiring rotation ends once every leaf chains to the next root", retiring, false, advance, false,
			"leaf", idle, nil},
		{"a retiring rotation rolls back to activated", retiring, false, rollback, false, "none", activated, nil},
		{"a running rotation pauses", activated, false, pause, false, "none", activated, nil},
		{"a running rotation does not resume", activated, false, resume, false, "none", "", rotation.ErrWrongPhase},
		{"a paused rotation does not pause again", publishing, true, pause, false, "none", "",
			rotation.ErrWrongPhase},
		{"a paused rotation resumes", publishing, true, resume, false, "none", publishing, nil},
		{"a paused rotation still rolls back", retiring, true, rollback, false, "none", activated, nil},
		{"an unknown action is refused", staged, false, "skip", false, "none", "", rotation.ErrInvalidChange},
		{"a forced step without a reason is refused", activated, false, advance, true, "lagging", "",
			rotation.ErrInvalidChange},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := at(t, tc.from, tc.paused, newCA.Root, oldCA.Root, now)
			before := *s
			ch := rotation.Change{Action: tc.action, Force: tc.force, Next: genCA(t).Root, Old: oldCA.Root}
			if tc.force && tc.name != "a forced step without a reason is refused" {
				ch.Reason = "incident 42"
			}
			tr, err := s.Apply(ch, report(s, tc.progress, now), now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("%s from %s: %v, want %v", tc.action, tc.from, err, tc.want)
			}
			if err != nil {
				if s.Generation != before.Generation || s.Phase != before.Phase || s.Paused != before.Paused {
					t.Fatalf("a refused change altered the state: %+v", s)
				}
				return
			}
			if s.Phase != tc.to || tr.To != tc.to || tr.From != tc.from || s.Generation != before.Generation+1 {
				t.Fatalf("%s from %s: now %s (transition %+v), want %s", tc.action, tc.from, s.Phase, tr, tc.to)
			}
			if tr.Forced != (tc.force && tc.progress == "lagging") {
				t.Fatalf("transition forced=%v; only a step past a closed gate counts as forced", tr.Forced)
			}
			if wantPaused := (tc.paused && tc.action != resume) || tc.action == pause; s.Paused != wantPaused {
				t.Fatalf("paused=%v, want %v", s.Paused, wantPaused)
			}
			if s.Phase == idle && (s.NextRoot != "" || s.LifetimeCap() != 0) {
				t.Fatal("an idle state kept the rotation's roots or lifetime cap")
			}
		})
	}
}

// TestEachPhaseKeepsTheInvariant checks, for each phase, the roots in responses and published bundles and the
// lifetime cap: a leaf from either CA is trusted wherever one can exist.
func TestEachPhaseKeepsTheInvariant(t *testing.T) {
	now := time.Now()
	oldCA, newCA := genCA(t), genCA(t)
	cases := []struct {
		phase              rotation.Phase
		responses, publish []*x509.Certificate
		withdrawn          int
		capped             bool
	}{
		{rotation.PhaseIdle, nil, nil, 0, false},
		{rotation.PhaseStaged, nil, nil, 0, true},
		{rotation.PhasePublishing, []*x509.Certificate{newCA.Root}, []*x509.Certificate{newCA.Root}, 0, true},
		{rotation.PhaseActivated, []*x509.Certificate{newCA.Root, oldCA.Root},
			[]*x509.Certificate{newCA.Root, oldCA.Root}, 0, true},
		{rotation.PhaseRetiring, []*x509.Certificate{newCA.Root}, []*x509.Certificate{newCA.Root, oldCA.Root}, 1,
			true},
	}
	for _, tc := range cases {
		t.Run(string(tc.phase), func(t *testing.T) {
			s := at(t, tc.phase, false, newCA.Root, oldCA.Root, now)
			extra, _ := s.ExtraRoots()
			pub, _ := s.PublishedRoots()
			gone, _ := s.WithdrawnRoots()
			if !sameCerts(extra, tc.responses) || !sameCerts(pub, tc.publish) || len(gone) != tc.withdrawn {
				t.Fatalf("responses %d, published %d, withdrawn %d roots", len(extra), len(pub), len(gone))
			}
			if (s.LifetimeCap() == time.Hour) != tc.capped {
				t.Fatalf("lifetime cap %s while %s", s.LifetimeCap(), tc.phase)
			}
		})
	}
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func TestStartChecksTheRoots(t *testing.T) {
	now := time.Now()
	g := genCA(t)
	cases := []struct {
		name      string
		next, old *x509.Certificate
		want      error
	}{
		{"a new root is staged", genCA(t).Root, g.Root, nil},
		{"the root in use is refused", g.Root, g.Root, rotation.ErrInvalidRoot},
		{"an intermediate is refused", g.Intermediate, genCA(t).Root, rotation.ErrInvalidRoot},
		{"a missing old root is refused", genCA(t).Root, nil, rotation.ErrInvalidRoot},
	}
	t.Run("a leaf lifetime cap under five minutes is refused", func(t *testing.T) {
		_, err := rotation.Idle().Apply(rotation.Change{Action: rotation.ActionStart, Next: genCA(t).Root,
			Old: g.Root, MaxLeafLifetime: time.Minute}, nil, now)
		if !errors.Is(err, rotation.ErrInvalidChange) {
			t.Fatalf("start: %v, want ErrInvalidChange", err)
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := rotation.Idle()
			_, err := s.Apply(rotation.Change{Action: rotation.ActionStart, Next: tc.next, Old: tc.old}, nil, now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("start: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestSameKeyReissueSkipsActivation: a root re-issued with the same key needs no activated phase, and its
// gates never wait for leaves (every leaf chains to both roots).
func TestSameKeyReissueSkipsActivation(t *testing.T) {
	now := time.Now()
	g := genCA(t)
	next := reissue(t, g)
	s := rotation.Idle()
	if _, err := s.Apply(rotation.Change{Action: rotation.ActionStart, Next: next, Old: g.Root}, nil, now); err != nil {
		t.Fatal(err)
	}
	if !s.SameKey {
		t.Fatal("a re-issued root is not recognised as the same key")
	}
	var path []rotation.Phase
	for s.Phase != rotation.PhaseIdle {
		if _, err := s.Apply(rotation.Change{Action: rotation.ActionAdvance}, report(s, "bundle", now),
			now); err != nil {
			t.Fatalf("advance from %s with every bundle holding the next root: %v", s.Phase, err)
		}
		path = append(path, s.Phase)
	}
	if len(path) != 3 || path[1] != rotation.PhaseRetiring {
		t.Fatalf("same-key path %v, want publishing, retiring, idle", path)
	}
	// The leaves of the old root verify under the re-issued one.
	if err := g.Intermediate.CheckSignatureFrom(next); err != nil {
		t.Fatalf("the intermediate does not verify under the re-issued root: %v", err)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	now := time.Now()
	s := at(t, rotation.PhaseStaged, false, genCA(t).Root, genCA(t).Root, now)
	for range 30 {
		for _, a := range []rotation.Action{rotation.ActionPause, rotation.ActionResume} {
			if _, err := s.Apply(rotation.Change{Action: a}, nil, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(s.History) != 20 || s.History[19].Generation != s.Generation {
		t.Fatalf("%d transitions kept, the last at %d of %d", len(s.History), s.History[19].Generation,
			s.Generation)
	}
}

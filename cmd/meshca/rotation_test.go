package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/rotation"
	"github.com/meshca/meshca/trustbundle"
)

// TestRotationCommands runs a rotation through the command line in order: each step's state is the next one's
// start. A running meshca is stood in for by progress reports written before the steps that read them.
func TestRotationCommands(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "rotation.json")
	root := func(name string) string {
		g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		writeFile(t, p, string(g.RootPEM))
		return p
	}
	next, old := root("next.pem"), root("old.pem")
	writeFile(t, filepath.Join(dir, "junk.pem"), "junk")
	progress := func(holders, holding int) func() {
		return func() {
			s, err := rotation.Load(state)
			if err != nil {
				t.Fatal(err)
			}
			p := &rotation.Progress{Generation: s.Generation, Phase: s.Phase, At: time.Now(), Complete: true,
				Holders: holders, HoldingNext: holding, LeafNext: holding}
			if holding < holders {
				p.Laggards = []rotation.Laggard{{Identity: "spiffe://cluster.local/ns/default/sa/slow",
					NotAfter: time.Now().Add(time.Hour)}}
			}
			if err := rotation.WriteProgress(rotation.ProgressPath(state), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := []string{"rotation"}
	st := []string{"rotation", "--state", state}
	args := func(base []string, more ...string) []string { return append(append([]string{}, base...), more...) }
	steps := []struct {
		name           string
		before         func()
		args           []string
		code           int
		stdout, stderr string
	}{
		{name: "rotation help lists the commands", args: args(r, "--help"), stdout: "prepare"},
		{name: "a command without --state is a usage mistake", args: args(r, "status"), code: 2, stderr: "--state"},
		{name: "status of a state file not yet written is idle", args: args(st, "status"), stdout: "idle"},
		{name: "prepare without roots is a usage mistake", args: args(st, "prepare"), code: 2,
			stderr: "--next-root"},
		{name: "prepare with a file that is not a certificate fails", args: args(st, "prepare", "--next-root",
			filepath.Join(dir, "junk.pem"), "--old-root", old), code: 1, stderr: "--next-root"},
		{name: "advance of an idle rotation fails", args: args(st, "advance"), code: 1, stderr: "prepare one"},
		{name: "prepare starts a rotation", args: args(st, "prepare", "--next-root", next, "--old-root", old),
			stdout: "prepared (generation 1)"},
		{name: "advance without a report from meshca is refused", args: args(st, "advance"), code: 3,
			stderr: "is meshca running"},
		{name: "force without a reason is a usage mistake", args: args(st, "advance", "--force"), code: 2,
			stderr: "--reason"},
		{name: "status shows the progress and names the laggards", before: progress(2, 1), args: args(st, "status"),
			stdout: "waiting for spiffe://cluster.local/ns/default/sa/slow"},
		{name: "advance while a workload lacks the next root is refused", before: progress(2, 1),
			args: args(st, "advance"), code: 3, stderr: "1 of 2 workloads"},
		{name: "advance once every workload holds it succeeds", before: progress(2, 2), args: args(st, "advance"),
			stdout: "advanced to activated"},
		{name: "an activated rotation cannot be aborted", args: args(st, "abort"), code: 1, stderr: "prepared"},
		{name: "a report from the previous phase is stale", before: nil, args: args(st, "advance"), code: 3,
			stderr: "generation 1"},
		{name: "force with a reason passes a closed gate", args: args(st, "advance", "--force", "--reason", "drill"),
			stdout: "advanced to idle (generation 3)"},
		{name: "status as JSON has the history", args: args(st, "status", "--json"), stdout: `"reason": "drill"`},
	}
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			var stdout, stderr bytes.Buffer
			code := runNoPanic(t, tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) ||
				!strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("exit %d (want %d), want stdout with %q and stderr with %q\nstdout:\n%s\nstderr:\n%s",
					code, tc.code, tc.stdout, tc.stderr, stdout.String(), stderr.String())
			}
		})
	}
}

// serve's wiring: with a prepared state file, the issuer's extra roots and the published bundle carry the next
// root, and the issuer's observer feeds the rotation tracker beside the expiry tracker.
func TestServeWiresTheRotation(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "rotation.json")
	gen := func() *file.Generated {
		g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	oldCA, newCA := gen(), gen()
	s := rotation.Idle()
	if err := s.Prepare(newCA.Root, oldCA.Root, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := rotation.Save(state, s); err != nil {
		t.Fatal(err)
	}
	a := &app{}
	cfg := &Config{Issuance: ca.Policy{TrustDomain: "cluster.local"}, Rotation: &rotation.Config{StateFile: state}}
	tracker, err := expiry.NewTracker(expiry.TrackerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	observer, extra, err := a.rotation(cfg, tracker, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := observer.(ca.ResultObserver); !ok || len(a.run) != 1 {
		t.Fatalf("the observer does not feed the rotation tracker, or no refresh loop (%d)", len(a.run))
	}
	src := withExtraRoots(trustbundle.SourceFunc(func(context.Context) ([]*x509.Certificate, error) {
		return []*x509.Certificate{oldCA.Root}, nil
	}), extra)
	roots, err := src.Roots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 2 || !roots[0].Equal(oldCA.Root) || !roots[1].Equal(newCA.Root) {
		t.Fatalf("the published bundle has %d roots; want the old root then the next one", len(roots))
	}
	if observer, _, _ := (&app{}).rotation(&Config{}, tracker, nil, nil); observer != tracker {
		t.Fatal("without a rotation section the observer must be the expiry tracker alone")
	}
}

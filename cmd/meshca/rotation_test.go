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
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/rotation"
	"github.com/meshca/meshca/trustbundle"
)

// TestRotationCommands runs a rotation through the command line in order, against a real rotation controller
// and its admin API on loopback: each step's state is the next one's start. One workload that has not
// received the next root holds the gates until it renews.
func TestRotationCommands(t *testing.T) {
	dir := t.TempDir()
	gen := func(name string) (*file.Generated, string) {
		g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		writeFile(t, p, string(g.RootPEM))
		return g, p
	}
	newCA, next := gen("next.pem")
	oldCA, old := gen("old.pem")
	writeFile(t, filepath.Join(dir, "junk.pem"), "junk")
	c, err := rotation.New(rotation.Config{StateFile: filepath.Join(dir, "rotation.json"), Manual: true,
		MaxLifetime: time.Hour, Started: time.Now().Add(-time.Hour), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tok, tokenFile := writeAdminToken(t, dir)
	l, err := rotation.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		log := slog.New(slog.DiscardHandler)
		_ = rotation.Serve(ctx, l, requireAdminToken("rotation.adminAddr", tok, rotation.Handler(c, log), log), log)
	}()
	t.Cleanup(func() { cancel(); <-done })
	obs := c.Observer(nil).(ca.ResultObserver)
	renew := func(bundle []byte, chainTo *file.Generated) func() {
		return func() {
			id, _ := csr.ParseID("spiffe://cluster.local/ns/default/sa/slow")
			obs.ObserveResult(&ca.Result{Identity: id, TrustBundle: bundle,
				Chain: []*x509.Certificate{chainTo.Intermediate, chainTo.Root}})
		}
	}
	both := append(append([]byte{}, oldCA.RootPEM...), newCA.RootPEM...)
	r := []string{"rotation", "--admin-addr", l.Addr().String(), "--admin-token-file", tokenFile}
	args := func(more ...string) []string { return append(append([]string{}, r...), more...) }
	steps := []struct {
		name           string
		before         func()
		args           []string
		code           int
		stdout, stderr string
	}{
		{name: "rotation help lists the commands", args: args("--help"), stdout: "rollback"},
		{name: "status of a fresh state is idle", before: renew(oldCA.RootPEM, oldCA), args: args("status"),
			stdout: "idle"},
		{name: "plan of an idle rotation lists every phase", args: args("plan"), stdout: "→ retiring"},
		{name: "start without roots and without a nextDir fails", args: args("start"), code: 1,
			stderr: "--next-root"},
		{name: "plan without a nextDir says the operator switches the CA", args: args("plan"),
			stdout: "the operator must switch the CA"},
		{name: "start with a file that is not a certificate fails", args: args("start", "--next-root",
			filepath.Join(dir, "junk.pem"), "--old-root", old), code: 1, stderr: "--next-root"},
		{name: "advance of an idle rotation is refused", args: args("advance"), code: 3, stderr: "start one"},
		{name: "prepare, the old name of start, stages a rotation", args: args("prepare", "--next-root", next,
			"--old-root", old, "--max-leaf-lifetime", "20m"), stdout: "start: idle → staged (generation 1)"},
		{name: "advance from staged publishes", args: args("advance"), stdout: "staged → publishing"},
		{name: "status names the holder that lacks the next root", args: args("status"),
			stdout: "waiting for spiffe://cluster.local/ns/default/sa/slow"},
		{name: "advance while a holder lacks the next root is refused", args: args("advance"), code: 3,
			stderr: "1 of 1 holders"},
		{name: "a change meant for another generation is refused", args: args("pause", "--generation", "1"),
			code: 3, stderr: "generation 2"},
		{name: "pause stops the rotation", args: args("pause", "--reason", "change freeze"),
			stdout: "publishing → publishing"},
		{name: "status shows the pause", args: args("status"), stdout: "paused"},
		{name: "resume lets it go on", args: args("resume"), stdout: "generation 4"},
		{name: "force without a reason is a usage mistake", args: args("force"), code: 2, stderr: "--reason"},
		{name: "force --dry-run lists what it would break and changes nothing", args: args("force", "--reason",
			"drill", "--dry-run"), stdout: "sa/slow lacks the next root"},
		{name: "advance once the holder has the next root activates", before: renew(both, oldCA),
			args: args("advance"), stdout: "publishing → activated"},
		{name: "abort, the old name of rollback, goes back one phase", args: args("abort"),
			stdout: "activated → publishing"},
		{name: "advance activates again", args: args("advance"), stdout: "publishing → activated"},
		{name: "force with a reason passes a closed gate", args: args("force", "--reason", "drill"),
			stdout: "activated → retiring (generation 8), forced"},
		{name: "status as JSON has the history", args: args("status", "--json"), stdout: `"reason": "drill"`},
		{name: "rollback from retiring needs no gate", args: args("rollback"), stdout: "retiring → activated"},
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
	for _, ch := range []rotation.Change{{Action: rotation.ActionStart, Next: newCA.Root, Old: oldCA.Root},
		{Action: rotation.ActionAdvance}} {
		if _, err := s.Apply(ch, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := rotation.Save(state, s); err != nil {
		t.Fatal(err)
	}
	a := &app{}
	cfg := &Config{Issuance: ca.Policy{TrustDomain: "cluster.local"}, Rotation: &rotation.Config{StateFile: state,
		AdminAddr: "127.0.0.1:0"}, AdminTokenFile: filepath.Join(t.TempDir(), "admin-token")}
	tracker, err := expiry.NewTracker(expiry.TrackerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rot, err := a.rotation(cfg, tracker, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, ok := rot.observer.(ca.ResultObserver); !ok || len(a.run) != 2 {
		t.Fatalf("the observer does not feed the rotation tracker, or no refresh loop (%d)", len(a.run))
	}
	src := withExtraRoots(trustbundle.SourceFunc(func(context.Context) ([]*x509.Certificate, error) {
		return []*x509.Certificate{oldCA.Root}, nil
	}), rot.published)
	roots, err := src.Roots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 2 || !roots[0].Equal(oldCA.Root) || !roots[1].Equal(newCA.Root) {
		t.Fatalf("the published bundle has %d roots; want the old root then the next one", len(roots))
	}
	if rot, _ := (&app{}).rotation(&Config{}, tracker, nil, nil, nil); rot.observer != tracker {
		t.Fatal("without a rotation section the observer must be the expiry tracker alone")
	}
}

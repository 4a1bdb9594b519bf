package main

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/internal/testpki"
	"github.com/meshca/meshca/rotation"
)

// caInto writes a new CA in the cacerts layout to dir/sub.
func caInto(t *testing.T, dir, sub string) *file.Generated {
	t.Helper()
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WriteDir(filepath.Join(dir, sub)); err != nil {
		t.Fatal(err)
	}
	return g
}

// serve's wiring of backends[].file.nextDir: the rotation controller takes the next root from the file
// backend, plan says that meshca switches the CA, and once activated the backend signs with the next CA.
func TestServeWiresTheCASwitch(t *testing.T) {
	dir := t.TempDir()
	oldCA, newCA := caInto(t, dir, "cacerts"), caInto(t, dir, "cacerts-next")
	cfg := &Config{Issuance: ca.Policy{TrustDomain: "cluster.local"},
		Backends: []BackendConfig{{Name: "file", File: &file.Config{Dir: filepath.Join(dir, "cacerts"),
			NextDir: filepath.Join(dir, "cacerts-next")}}},
		Rotation: &rotation.Config{StateFile: filepath.Join(dir, "rotation.json"), AdminAddr: "127.0.0.1:0",
			Manual: true, Started: time.Now().Add(-48 * time.Hour)},
		AdminTokenFile: filepath.Join(dir, "admin-token")}
	log, reg, ctx := slog.New(slog.DiscardHandler), prometheus.NewRegistry(), context.Background()
	a := &app{}
	defer a.Close()
	named, _, err := a.backends(ctx, cfg, log, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tracker, err := expiry.NewTracker(expiry.TrackerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.rotation(cfg, tracker, nil, log, reg); err != nil {
		t.Fatal(err)
	}
	c := a.caSwitch.controller.Load()
	if c == nil || !strings.Contains(plan(c.State(), c.SwitchesCA()), "meshca signs with the next CA") {
		t.Fatal("plan does not say that meshca switches the CA itself")
	}
	signsUnder := func(root *x509.Certificate) bool {
		t.Helper()
		id, _ := url.Parse("spiffe://cluster.local/ns/default/sa/app")
		resp, err := named[0].Backend.Sign(ctx, &backends.SignRequest{PublicKey: testpki.Key(t).Public(),
			URIs: []*url.URL{id}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Chain[1].CheckSignatureFrom(root) == nil
	}
	for _, step := range []struct {
		action rotation.Action
		under  *file.Generated
	}{{rotation.ActionStart, oldCA}, {rotation.ActionAdvance, oldCA}, {rotation.ActionAdvance, newCA},
		{rotation.ActionRollback, oldCA}} {
		if _, _, err := c.Do(ctx, rotation.Change{Action: step.action}, 0); err != nil {
			t.Fatalf("%s: %v", step.action, err)
		}
		if ph := c.State().Phase; !signsUnder(step.under.Root) {
			t.Fatalf("at %s the file backend signs with the wrong CA", ph)
		}
	}
}

package rotation_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/rotation"
)

// TestForcedTransitionIsAuditedAndCounted: a change past a closed gate is refused without force; forced, it is
// one audit record naming the reason and who asked, and counts in the forced-transitions metric, while a
// transition through an open gate does not.
func TestForcedTransitionIsAuditedAndCounted(t *testing.T) {
	var audit bytes.Buffer
	reg := prometheus.NewRegistry()
	c, err := rotation.New(rotation.Config{StateFile: filepath.Join(t.TempDir(), "rotation.json"), Manual: true,
		MaxLifetime: time.Hour, Logger: slog.New(slog.DiscardHandler), Registerer: reg,
		Audit: slog.New(slog.NewJSONHandler(&audit, nil))}) // a fresh tracker: every gate after staged is closed
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		ch   rotation.Change
		want error
	}{
		{rotation.Change{Action: rotation.ActionStart, Next: genCA(t).Root, Old: genCA(t).Root}, nil},
		{rotation.Change{Action: rotation.ActionAdvance}, nil},
		{rotation.Change{Action: rotation.ActionAdvance}, rotation.ErrGateClosed},
		{rotation.Change{Action: rotation.ActionAdvance, Force: true, Reason: "drill 7", By: "alice"}, nil},
	}
	for _, st := range steps {
		if _, _, err := c.Do(ctx, st.ch, 0); !errors.Is(err, st.want) {
			t.Fatalf("%s: %v, want %v", st.ch.Action, err, st.want)
		}
	}
	if got := counter(t, reg, "meshca_rotation_forced_transitions_total"); got != 1 {
		t.Fatalf("forced transitions %v, want 1", got)
	}
	lines := strings.Split(strings.TrimSpace(audit.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], `"reason":"drill 7"`) ||
		!strings.Contains(lines[2], `"forced":true`) || !strings.Contains(lines[2], `"by":"alice"`) ||
		strings.Contains(lines[1], `"forced":true`) {
		t.Fatalf("audit records:\n%s", audit.String())
	}
	if c.State().Phase != rotation.PhaseActivated {
		t.Fatalf("phase %s, want activated", c.State().Phase)
	}
}

// counter returns the value of the counter name in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

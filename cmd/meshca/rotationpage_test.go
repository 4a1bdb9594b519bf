package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/rotation"
)

// With a rotation section, the HTTP port serves the status page; without one, no page.
func TestServeOffersTheRotationStatusPage(t *testing.T) {
	tracker, err := expiry.NewTracker(expiry.TrackerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a := &app{}
	rc := &rotation.Config{StateFile: filepath.Join(t.TempDir(), "rotation.json"), AdminAddr: "127.0.0.1:0"}
	cfg := &Config{Issuance: ca.Policy{TrustDomain: "cluster.local"}, Rotation: rc,
		AdminTokenFile: filepath.Join(t.TempDir(), "admin-token")}
	if _, err := a.rotation(cfg, tracker, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	page := a.pages[rotation.PagePath]
	if page == nil {
		t.Fatalf("no page at %s: %v", rotation.PagePath, a.pages)
	}
	rec := httptest.NewRecorder()
	page.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, rotation.PagePath, nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `<b id="phase">idle</b>`) {
		t.Fatalf("GET %s: %d\n%s", rotation.PagePath, rec.Code, rec.Body.String())
	}
	b := &app{}
	if _, err := b.rotation(&Config{}, tracker, nil, nil, nil); err != nil || b.pages != nil {
		t.Fatalf("without a rotation section: pages %v, %v", b.pages, err)
	}
}

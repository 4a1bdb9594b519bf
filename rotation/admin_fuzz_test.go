package rotation_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/rotation"
)

// FuzzChangeRequest posts arbitrary bodies to the admin API: every answer is 200, 400 or 409, never a 500 or a
// panic, and the state stays loadable.
func FuzzChangeRequest(f *testing.F) {
	f.Add([]byte(`{"action":"start","nextRoot":"x","oldRoot":"y","maxLeafLifetime":"1h"}`))
	f.Add([]byte(`{"action":"advance","force":true,"reason":"r"}`))
	f.Add([]byte(`{"action":"pause","generation":7}`))
	f.Add([]byte(`{"action":"rollback","dryRun":true}`))
	f.Add([]byte(`{"action":"skip"}`))
	path := filepath.Join(f.TempDir(), "rotation.json")
	c, err := rotation.New(rotation.Config{StateFile: path, MaxLifetime: time.Hour, Manual: true,
		Logger: catest.DiscardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	h := rotation.Handler(c, catest.DiscardLogger())
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, rotation.ChangePath, bytes.NewReader(body)))
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusConflict:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if _, err := rotation.Load(path); err != nil {
			t.Fatalf("the state no longer loads: %v", err)
		}
	})
}

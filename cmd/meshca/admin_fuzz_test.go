package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl/admin"
)

// FuzzAdminRevoke sends arbitrary bodies to the admin API's revoke endpoint over a real registry: every request
// is answered 200 or 400 (the caller's mistake), never a server error or a panic.
func FuzzAdminRevoke(f *testing.F) {
	for _, s := range []string{
		`{"serial":"01","ca":"ski:00"}`, `{"identity":"spiffe://cluster.local/ns/a/sa/b","quarantine":"1h"}`,
		`{"serial":"zz"}`, `{"certificate":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"}`,
		`{"identity":"x","reason":"keyCompromise"}`, `{"serial":"01","identity":"y"}`, `{}`, `[`, `{"extra":1}`,
		`{"identity":"spiffe://cluster.local/ns/a/sa/b","quarantine":"-5m"}`, `{"serial":"0:1:2","ca":"ski:0g"}`,
	} {
		f.Add(s)
	}
	dir, _ := catest.FileCA(f)
	rv := revocationFor(f, "file", catest.FileBackend(f, dir, nil))
	h := admin.Handler(rv, catest.DiscardLogger())
	f.Fuzz(func(t *testing.T, body string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, admin.RevokePath, strings.NewReader(body)))
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("%q: %d %s", body, w.Code, w.Body.String())
		}
	})
}

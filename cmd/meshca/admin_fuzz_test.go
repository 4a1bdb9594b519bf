package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/crl/admin"
	"github.com/meshca/meshca/internal/devtoken"
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

// FuzzAdminExplain sends arbitrary bodies to the admin API's explain endpoint over a real issuer with a rule:
// every request is answered 200 or 400, never a server error or a panic, and a 400's message stays bounded.
func FuzzAdminExplain(f *testing.F) {
	for _, s := range []string{
		`{"namespace":"default","serviceAccount":"sleep"}`, `{"namespace":"payments","serviceAccount":"a"}`,
		`{"namespace":"a","serviceAccount":"b","keyType":"RSA-2048","ttl":"2h","certSigner":"x"}`,
		`{"namespace":"a","serviceAccount":"b","at":"2026-12-01T00:00:00Z","namespaceLabels":{"team":"x"}}`,
		`{"namespace":"a","serviceAccount":"b","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAA==\n"}`,
		`{"namespace":"","serviceAccount":"b"}`, `{"namespace":"A_B","serviceAccount":"b","ttl":"-1h"}`, `{`, `[]`,
	} {
		f.Add(s)
	}
	dir, _ := catest.FileCA(f)
	fb := catest.FileBackend(f, dir, nil)
	rv := revocationFor(f, "file", fb)
	dev, err := devtoken.Generate("")
	if err != nil {
		f.Fatal(err)
	}
	jwt, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		f.Fatal(err)
	}
	issuer, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: fb}}, Authenticator: jwt,
		Policy: ca.Policy{TrustDomain: "cluster.local"}, Logger: catest.DiscardLogger(),
		Rules: policy.Config{Rules: []policy.Rule{{Name: "freeze",
			Match: policy.Match{Namespaces: []string{"payments"}}, Deny: &policy.Deny{Reason: "incident"}}}}})
	if err != nil {
		f.Fatal(err)
	}
	rv.explainWith(issuer)
	h := admin.Handler(rv, catest.DiscardLogger())
	f.Fuzz(func(t *testing.T, body string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, admin.ExplainPath, strings.NewReader(body)))
		if w.Code != http.StatusOK && (w.Code != http.StatusBadRequest || w.Body.Len() > 2048) {
			t.Fatalf("%q: %d %s", body, w.Code, w.Body.String())
		}
	})
}

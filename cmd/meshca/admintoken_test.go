package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/crl/admin"
	"github.com/meshca/meshca/internal/admintoken"
	"github.com/meshca/meshca/rotation"
)

// tokenFile is the admin token file serve --dev writes.
func (d *devServer) tokenFile() string { return devAdminTokenFile(d.dir) }

// writeAdminToken writes a new admin token into dir, as serve does, and returns it and its file.
func writeAdminToken(t *testing.T, dir string) (string, string) {
	t.Helper()
	tok, err := admintoken.Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin-token")
	if err := admintoken.Write(path, tok); err != nil {
		t.Fatal(err)
	}
	return tok, path
}

// adminCall makes one call to a loopback admin API with the Authorization header auth (none when empty).
func adminCall(t *testing.T, method, url, auth string, body any) int {
	t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The revocation admin API on loopback answers only callers with the admin token serve --dev wrote (0600):
// without it or with a wrong one, every path is 401 and nothing is revoked.
func TestRevocationAdminAPIRequiresTheAdminToken(t *testing.T) {
	d := startDev(t)
	defer d.shutdown(t)
	d.waitReady(t)
	fi, err := os.Stat(d.tokenFile())
	if err != nil {
		t.Fatalf("serve --dev wrote no admin token: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin token file mode %v, want 0600", fi.Mode().Perm())
	}
	tok, err := admintoken.Read(d.tokenFile())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.request(t, "default", "sleep", nil); err != nil {
		t.Fatal(err)
	}
	wrong, _ := admintoken.Generate()
	base := "http://" + d.adminAddr
	revoke := admin.RevokeRequest{Identity: "spiffe://cluster.local/ns/default/sa/sleep", Reason: "keyCompromise"}
	explain := admin.ExplainRequest{Namespace: "default", ServiceAccount: "sleep"}
	for _, auth := range []struct{ name, header string }{
		{"without a token", ""}, {"with a wrong token", "Bearer " + wrong}, {"with the token as Basic", "Basic " + tok},
	} {
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{http.MethodPost, admin.RevokePath, revoke}, {http.MethodGet, admin.CRLsPath, nil},
			{http.MethodGet, admin.PEMPath, nil}, {http.MethodPost, admin.ExplainPath, explain},
		} {
			t.Run(fmt.Sprintf("%s %s %s is refused", c.method, c.path, auth.name), func(t *testing.T) {
				if code := adminCall(t, c.method, base+c.path, auth.header, c.body); code != http.StatusUnauthorized {
					t.Fatalf("%d, want 401", code)
				}
			})
		}
	}
	_, err = (&admin.Client{Addr: d.adminAddr, Token: wrong}).CRLs(context.Background())
	if !errors.Is(err, admin.ErrUnauthorized) {
		t.Fatalf("the client with a wrong token: %v, want ErrUnauthorized", err)
	}
	if !strings.Contains(d.stderr.String(), "refused a request without the admin token") {
		t.Errorf("the refusals are not logged:\n%s", d.stderr.String())
	}
	c := &admin.Client{Addr: d.adminAddr, Token: tok}
	res, err := c.Revoke(context.Background(), revoke)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Revoked) != 1 || res.Revoked[0].Existing {
		t.Fatalf("with the token: %+v; want one certificate revoked now, not before", res.Revoked)
	}
	if code := adminCall(t, http.MethodGet, base+admin.CRLsPath, "Bearer "+tok, nil); code != http.StatusOK {
		t.Fatalf("GET %s with the token: %d", admin.CRLsPath, code)
	}
}

// The rotation admin API on loopback answers only callers with the admin token written to adminTokenFile: a
// change without it or with a wrong one is 401 and makes no transition.
func TestRotationAdminAPIRequiresTheAdminToken(t *testing.T) {
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t))
	tokenFile := filepath.Join(dir, "run", "admin-token")
	cfg := &Config{Issuance: ca.Policy{TrustDomain: "cluster.local"}, AdminTokenFile: tokenFile,
		Rotation: &rotation.Config{StateFile: filepath.Join(dir, "rotation.json"), AdminAddr: addr, Manual: true}}
	tracker, err := expiry.NewTracker(expiry.TrackerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a := &app{}
	if _, err := a.rotation(cfg, tracker, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	for _, loop := range a.run {
		loops.Go(func() { _ = loop(ctx) })
	}
	t.Cleanup(func() { cancel(); loops.Wait(); a.Close() })
	tok, err := admintoken.Read(tokenFile)
	if err != nil {
		t.Fatalf("no admin token at adminTokenFile: %v", err)
	}
	gen := func() string {
		g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
		if err != nil {
			t.Fatal(err)
		}
		return string(g.RootPEM)
	}
	start := rotation.ChangeRequest{Action: rotation.ActionStart, Reason: "test", NextRoot: gen(), OldRoot: gen()}
	wrong, _ := admintoken.Generate()
	for _, tc := range []struct{ name, header string }{
		{"a start without a token is refused", ""}, {"a start with a wrong token is refused", "Bearer " + wrong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := adminCall(t, http.MethodPost, "http://"+addr+rotation.ChangePath, tc.header,
				start); code != http.StatusUnauthorized {
				t.Fatalf("%d, want 401", code)
			}
			if code := adminCall(t, http.MethodGet, "http://"+addr+rotation.StatusPath, tc.header,
				nil); code != http.StatusUnauthorized {
				t.Fatalf("status: %d, want 401", code)
			}
		})
	}
	if _, err := (&rotation.Client{Addr: addr}).Status(ctx); !errors.Is(err, rotation.ErrUnauthorized) {
		t.Fatalf("the client without a token: %v, want ErrUnauthorized", err)
	}
	c := &rotation.Client{Addr: addr, Token: tok, HTTP: &http.Client{Timeout: 10 * time.Second}}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State.Phase != rotation.PhaseIdle || st.State.Generation != 0 {
		t.Fatalf("after the refused starts: phase %s generation %d, want idle 0", st.State.Phase,
			st.State.Generation)
	}
	if st, err = c.Change(ctx, start); err != nil || st.State.Phase == rotation.PhaseIdle {
		t.Fatalf("a start with the token: %v (phase %v)", err, st)
	}
}

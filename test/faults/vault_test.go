package faults_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/backends/vault/vaulttest"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
)

const sleepID = "spiffe://cluster.local/ns/default/sa/sleep"

// TestVaultKilledUnderLoad: Vault is killed while agents request certificates, then restarted. Meanwhile
// every request fails Unavailable (which istio-agent retries) within a second, and issuance resumes within
// 5s of Vault being back, with the same meshca.
func TestVaultKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Vault")
	}
	s := vaulttest.Start(t, vaulttest.Options{Persistent: true})
	// meshca's own serving certificate (localhost, 127.0.0.1) is issued through Vault too.
	p := s.PKI(t, vaulttest.PKIOptions{Role: map[string]any{"allow_localhost": true, "allow_ip_sans": true}})
	b, err := vault.New(t.Context(), vault.Config{Address: s.Addr, Mount: p.Mount, Role: p.Role, RootsPEM: p.RootPEM,
		Timeout: time.Second, Auth: vault.AuthConfig{Method: vault.AuthToken,
			Token: vault.Secret(s.CreateToken(t, time.Hour, true, p.Policy))},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	m := catest.StartMeshca(t, catest.MeshcaOptions{Backends: []ca.NamedBackend{{Name: "vault", Backend: b}},
		Limits: ca.Limits{PerCallerRate: -1}})
	l := startLoad(t, m.Dial(t), m.Token(t, "default", "sleep"), sleepID, 4)

	time.Sleep(time.Second)
	killed := time.Now()
	s.Kill()
	t.Logf("Vault killed at %s", killed.Format(time.StampMilli))
	time.Sleep(3 * time.Second)
	restarting := time.Now()
	s.Restart(t)
	back := time.Now()
	t.Logf("Vault restarted in %s", back.Sub(restarting).Round(time.Millisecond))
	time.Sleep(6 * time.Second)
	l.end()

	var before []result // answered before the kill (one in flight at the kill may fail)
	for _, r := range l.between(time.Time{}, killed) {
		if r.at.Add(r.took).Before(killed) {
			before = append(before, r)
		}
	}
	if len(before) == 0 || count(before, codes.OK) != len(before) {
		t.Fatalf("before the kill: %d of %d requests served (%+v)", count(before, codes.OK), len(before), before[0])
	}
	// A request sent after the kill, before the restart began, fails Unavailable within a second; one sent
	// around the kill may still have been served.
	outage := l.between(killed.Add(100*time.Millisecond), restarting)
	if len(outage) == 0 {
		t.Fatal("no request was sent while Vault was down")
	}
	for _, r := range outage {
		if r.code != codes.Unavailable || r.took > time.Second {
			t.Fatalf("while Vault was down: %v after %s (%s), want Unavailable within 1s", r.code, r.took, r.message)
		}
	}
	var firstOK time.Time
	for _, r := range l.between(back, back.Add(time.Hour)) {
		if r.code == codes.OK {
			firstOK = r.at.Add(r.took)
			break
		}
	}
	if firstOK.IsZero() || firstOK.Sub(back) > 5*time.Second {
		t.Fatalf("no certificate within 5s of Vault's restart (first at %v)", firstOK)
	}
	late := l.between(back.Add(5*time.Second), back.Add(time.Hour))
	if len(late) == 0 || count(late, codes.OK) != len(late) {
		t.Fatalf("5s after the restart: %d of %d requests served", count(late, codes.OK), len(late))
	}
	t.Logf("%d requests before, %d during the outage (all Unavailable, slowest %s), first certificate %s after "+
		"the restart", len(before), len(outage), slowest(outage), firstOK.Sub(back).Round(time.Millisecond))
}

func count(rs []result, c codes.Code) int {
	n := 0
	for _, r := range rs {
		if r.code == c {
			n++
		}
	}
	return n
}

func slowest(rs []result) time.Duration {
	var d time.Duration
	for _, r := range rs {
		d = max(d, r.took)
	}
	return d.Round(time.Millisecond)
}

package expiry_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/expiry"
)

// goldenFixtures writes, into the current directory, the inputs of the golden tests: certificates made at
// fixed times around t0 (fresh keys, fixed serials and names), so the report depends on nothing random.
func goldenFixtures(t *testing.T) {
	t.Helper()
	p := newPKI(t)
	writeFiles(t, "cacerts", map[string][]byte{
		"ca-cert.pem":    certsPEM(p.Inter),
		"ca-key.pem":     keyPEM(t, p.Inter.Key),
		"cert-chain.pem": certsPEM(p.Inter, p.Root),
		"root-cert.pem":  certsPEM(p.Root),
		"ca-crl.pem":     crlPEM(t, p.Inter, nil, 41, t0.Add(-day), 7*day, 100, 101),
		"README":         []byte("not PEM: skipped"),
	})
	leaf := makeCert(t, certSpec{Serial: 0x1f00d, NotBefore: t0.Add(-12 * time.Hour), Life: day, Parent: p.Inter,
		SPIFFE: "spiffe://cluster.local/ns/shop/sa/cart"})
	writeFiles(t, "output-certs", map[string][]byte{
		"cert-chain.pem": certsPEM(leaf, p.Inter),
		"key.pem":        keyPEM(t, leaf.Key),
		"root-cert.pem":  certsPEM(p.Root),
	})
	expired := makeCert(t, certSpec{CN: "old.example.com", Serial: 7, NotBefore: t0.Add(-100 * day), Life: 90 * day,
		Parent: p.Inter})
	web := makeCert(t, certSpec{CN: "web.example.com", Serial: 8, NotBefore: t0.Add(-time.Hour), Life: 30 * day,
		RSABits: 2048, Parent: p.Inter})
	writeFiles(t, "loose", map[string][]byte{"expired.pem": certsPEM(expired), "bundle.pem": certsPEM(web, p.Inter)})

	other := newPKI(t) // a different hierarchy with the same names
	writeFiles(t, "broken", map[string][]byte{
		"ca-cert.pem":    certsPEM(p.Inter),
		"ca-key.pem":     keyPEM(t, other.Inter.Key),
		"cert-chain.pem": certsPEM(p.Inter),
		"root-cert.pem":  certsPEM(other.Root),
		"ca-crl.pem": append(crlPEM(t, p.Inter, other.Inter.Key, 9, t0.Add(-10*day), 7*day),
			[]byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")...),
	})
}

// inspect runs Inspect at t0 on args and returns its output and exit status.
func inspect(t *testing.T, args expiry.InspectArgs) (string, int) {
	t.Helper()
	args.Now = t0
	var out, errOut bytes.Buffer
	args.Stderr = &errOut
	code := expiry.Inspect(context.Background(), args, &out)
	if errOut.Len() > 0 {
		t.Logf("stderr: %s", errOut.String())
	}
	return out.String(), code
}

// checkGolden compares got with the golden file at path, or rewrites it under -update.
func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// The inspect report of files, directories and a cacerts directory, as a table, coloured table and JSON, is
// the checked-in golden output, with the exit status the threshold gives.
func TestInspectGolden(t *testing.T) {
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	goldenFixtures(t)
	tests := []struct {
		name   string
		args   expiry.InspectArgs
		golden string
		code   int
	}{
		{"a cacerts directory with a CRL is healthy for a 7 day threshold",
			expiry.InspectArgs{Paths: []string{"cacerts"}}, "cacerts.txt", expiry.ExitOK},
		{"a 30 day threshold flags the intermediate",
			expiry.InspectArgs{Paths: []string{"cacerts"}, Within: 30 * day}, "cacerts-30d.txt", expiry.ExitExpiring},
		{"a cacerts directory as JSON",
			expiry.InspectArgs{Paths: []string{"cacerts"}, JSON: true}, "cacerts.json", expiry.ExitOK},
		{"istio-agent output certificates expiring within the threshold",
			expiry.InspectArgs{Paths: []string{"output-certs"}}, "output-certs.txt", expiry.ExitExpiring},
		{"the same on a terminal is coloured",
			expiry.InspectArgs{Paths: []string{"output-certs"}, Color: true}, "output-certs-color.txt",
			expiry.ExitExpiring},
		{"single files, one expired, sorted soonest first",
			expiry.InspectArgs{Paths: []string{"loose/bundle.pem", "loose/expired.pem"}}, "files.txt",
			expiry.ExitExpiring},
		{"a broken cacerts directory and a missing path report every failed check",
			expiry.InspectArgs{Paths: []string{"broken", "missing"}}, "broken.txt", expiry.ExitExpiring},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := inspect(t, tt.args)
			if code != tt.code {
				t.Errorf("exit status %d, want %d", code, tt.code)
			}
			if strings.Contains(out, "\x1b[") != tt.args.Color {
				t.Errorf("colour codes present: %v, want %v", !tt.args.Color, tt.args.Color)
			}
			checkGolden(t, filepath.Join(testdata, tt.golden), out)
		})
	}
}

// The exit status distinguishes nothing to report, something within the threshold, a failed check with
// nothing expiring, and no input at all.
func TestInspectExitStatus(t *testing.T) {
	t.Chdir(t.TempDir())
	p := newPKI(t)
	writeFiles(t, "ok", map[string][]byte{"ca-cert.pem": certsPEM(p.Inter), "root-cert.pem": certsPEM(p.Root)})
	other := newPKI(t)
	writeFiles(
		t,
		"mismatch",
		map[string][]byte{"ca-cert.pem": certsPEM(p.Inter), "ca-key.pem": keyPEM(t, other.Inter.Key),
			"root-cert.pem": certsPEM(p.Root)},
	)
	tests := []struct {
		name string
		args expiry.InspectArgs
		want int
	}{
		{"nothing within the threshold", expiry.InspectArgs{Paths: []string{"ok"}}, expiry.ExitOK},
		{"the intermediate within a 60 day threshold", expiry.InspectArgs{Paths: []string{"ok"}, Within: 60 * day},
			expiry.ExitExpiring},
		{"a key that does not match, nothing expiring", expiry.InspectArgs{Paths: []string{"mismatch"}},
			expiry.ExitProblem},
		{"an unreadable path", expiry.InspectArgs{Paths: []string{"nowhere"}}, expiry.ExitProblem},
		{"no input at all", expiry.InspectArgs{}, expiry.ExitError},
		{"a failed write", expiry.InspectArgs{Paths: []string{"ok"}}, expiry.ExitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			var w io.Writer = &out
			if strings.HasPrefix(tt.name, "a failed write") {
				w = failingWriter{}
			}
			tt.args.Now = t0
			if got := expiry.Inspect(context.Background(), tt.args, w); got != tt.want {
				t.Errorf("exit status %d, want %d\n%s", got, tt.want, out.String())
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

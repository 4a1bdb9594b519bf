package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Every command's help goes to stdout with exit 0; usage mistakes go to stderr with exit 2; nothing is ignored.
func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.yaml")
	writeFile(t, badConfig, "issuance: {trustDomian: cluster.local, defaultTTL: 3600}\n"+okServer)
	goodConfig := filepath.Join(dir, "good.yaml")
	writeFile(t, goodConfig, "issuance: {trustDomain: cluster.local, defaultTTL: 12h}\n"+okServer)
	cases := []struct {
		name string
		args []string
		code int
		// stdout and stderr are fragments that must appear in each stream; "" checks nothing.
		stdout, stderr string
	}{
		{name: "no command prints usage and fails", args: nil, code: 2, stderr: "a command is required"},
		{name: "root help", args: []string{"--help"}, code: 0, stdout: "Available Commands"},
		{name: "serve help", args: []string{"serve", "--help"}, code: 0, stdout: "--grpc-addr"},
		{name: "init help", args: []string{"init", "-h"}, code: 0, stdout: "--trust-domain"},
		{name: "token help", args: []string{"token", "--help"}, code: 0, stdout: "--service-account"},
		{name: "config validate help", args: []string{"config", "validate", "--help"}, code: 0, stdout: "FILE"},
		{name: "version help", args: []string{"version", "--help"}, code: 0, stdout: "Go version"},
		{name: "an unknown command lists the valid ones", args: []string{"bogus"}, code: 2,
			stderr: "commands: completion, config, crl, init, inspect, policy, revoke, rotation, serve, token, " +
				"version"},
		{name: "an unknown flag", args: []string{"serve", "--bogus"}, code: 2, stderr: "--bogus"},
		{name: "an extra argument to version", args: []string{"version", "extra"}, code: 2, stderr: "extra"},
		{name: "an extra argument to serve", args: []string{"serve", "--dev", dir, "extra"}, code: 2, stderr: "extra"},
		{name: "serve without --config or --dev", args: []string{"serve"}, code: 2, stderr: "config dev"},
		{name: "serve with both --config and --dev", args: []string{"serve", "--config", "a", "--dev", "b"},
			code: 2, stderr: "config dev"},
		{name: "an unknown log level lists the valid ones", args: []string{"serve", "--dev", dir, "--log-level",
			"loud"}, code: 2, stderr: "debug, info, warn, error"},
		{name: "an unknown log format", args: []string{"serve", "--dev", dir, "--log-format", "xml"}, code: 2,
			stderr: "json or text"},
		{name: "a listen address flag that cannot be bound", args: []string{"serve", "--dev", dir,
			"--grpc-addr", "nowhere", "--log-format", "text"}, code: 1, stderr: "server.grpcAddr"},
		{name: "version prints version, commit, Go version and date", args: []string{"version"}, code: 0,
			stdout: runtime.Version()},
		{name: "--version prints the same", args: []string{"--version"}, code: 0, stdout: "commit:"},
		{name: "completion for bash", args: []string{"completion", "bash"}, code: 0, stdout: "bash completion"},
		{name: "completion for zsh", args: []string{"completion", "zsh"}, code: 0, stdout: "compdef"},
		{name: "completion for fish", args: []string{"completion", "fish"}, code: 0, stdout: "complete -c meshca"},
		{name: "config validate without a file", args: []string{"config", "validate"}, code: 2, stderr: "1 arg"},
		{name: "config validate prints every problem with its key path", args: []string{"config", "validate",
			badConfig}, code: 1, stderr: "issuance.trustDomian: unknown key; did you mean trustDomain?"},
		{name: "config validate refuses a bare duration", args: []string{"config", "validate", badConfig}, code: 1,
			stderr: "issuance.defaultTTL: 3600 has no unit; write 1h"},
		{name: "config validate accepts a good file", args: []string{"config", "validate", goodConfig}, code: 0,
			stdout: "ok"},
		{name: "config validate reads the file", args: []string{"config", "validate", filepath.Join(dir, "none")},
			code: 1, stderr: "no such file"},
		{name: "config print writes durations with units", args: []string{"config", "print", goodConfig}, code: 0,
			stdout: "defaultTTL: 12h"},
		{name: "config print help", args: []string{"config", "print", "--help"}, code: 0, stdout: "--defaults"},
		{name: "config help lists its subcommands", args: []string{"config", "--help"}, code: 0, stdout: "validate"},
		{name: "config print without a file or --defaults", args: []string{"config", "print"}, code: 2,
			stderr: "--defaults"},
		{name: "config print with two files", args: []string{"config", "print", goodConfig, goodConfig}, code: 2,
			stderr: "at most 1 arg"},
		{name: "config print --defaults alone prints every default", args: []string{"config", "print", "--defaults"},
			code: 0, stdout: "signTimeout: 10s"},
		{name: "config print --defaults of a file keeps its settings", args: []string{"config", "print",
			"--defaults", goodConfig}, code: 0, stdout: "defaultTTL: 12h"},
		{name: "config without a subcommand", args: []string{"config"}, code: 2, stderr: "validate or print"},
		{name: "config with an unknown subcommand", args: []string{"config", "bogus"}, code: 2, stderr: "bogus"},
		{name: "inspect help", args: []string{"inspect", "--help"}, code: 0, stdout: "--within"},
		{name: "completion help", args: []string{"completion", "--help"}, code: 0, stdout: "bash"},
		{name: "completion for an unknown shell", args: []string{"completion", "tcsh"}, code: 2, stderr: "tcsh"},
		{name: "completion without a shell", args: []string{"completion"}, code: 2, stderr: "a shell is required"},
		{name: "init with an invalid trust domain", args: []string{"init", "--dir", dir, "--trust-domain", "Bad!"},
			code: 2, stderr: "--trust-domain"},
		{name: "init with an extra argument", args: []string{"init", "extra"}, code: 2, stderr: "extra"},
		{name: "init writes a dev CA", args: []string{"init", "--dir", filepath.Join(dir, "dev")}, code: 0,
			stdout: "wrote a dev root"},
		{name: "token with a zero lifetime", args: []string{"token", "--dir", dir, "--ttl", "0s"}, code: 2,
			stderr: "--ttl"},
		{name: "token with an invalid namespace", args: []string{"token", "--dir", dir, "--namespace", "Not_A_NS"},
			code: 2, stderr: "--namespace"},
		{name: "token without a dev key fails naming init", args: []string{"token", "--dir", filepath.Join(dir,
			"none")}, code: 1, stderr: "meshca init"},
		{name: "token after init prints a token", args: []string{"token", "--dir", filepath.Join(dir, "dev")},
			code: 0, stdout: "eyJ"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { expectRun(t, tc.args, tc.code, tc.stdout, tc.stderr) })
	}
}

// expectRun runs meshca with args and requires the exit code, and the fragments in stdout and stderr ("" checks
// nothing); it returns stdout.
func expectRun(t *testing.T, args []string, code int, stdoutHas, stderrHas string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	got := runNoPanic(t, args, &stdout, &stderr)
	if got != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", got, code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), stdoutHas) || !strings.Contains(stderr.String(), stderrHas) {
		t.Fatalf("want stdout with %q and stderr with %q\nstdout:\n%s\nstderr:\n%s", stdoutHas, stderrHas,
			stdout.String(), stderr.String())
	}
	return stdout.String()
}

// config print writes what config validate and serve accept again.
func TestConfigPrintRoundTrips(t *testing.T) {
	for _, f := range []string{"../../manifests/overlays/file/config.yaml",
		"../../manifests/overlays/vault/config.yaml"} {
		var stdout, stderr bytes.Buffer
		if code := runNoPanic(t, []string{"config", "print", f}, &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d: %s", f, code, stderr.String())
		}
		if _, err := loadBytes(stdout.Bytes()); err != nil {
			t.Fatalf("%s printed as\n%s\ndoes not load: %v", f, stdout.String(), err)
		}
	}
}

// A start-up failure with --log-format json is one JSON record naming the cause, after the start record.
func TestServeLogsStartAndFatalErrorAsJSON(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, "issuance: {trustDomain: cluster.local}\n"+okServer)
	var stdout, stderr bytes.Buffer
	if code := runNoPanic(t, []string{"serve", "--config", cfg, "--log-format", "json"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr.String())
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		msgs = append(msgs, rec["msg"].(string))
		if rec["msg"] == "meshca stopped" && !strings.Contains(rec["cause"].(string), "/etc/cacerts") {
			t.Errorf("the fatal record's cause %q does not name /etc/cacerts", rec["cause"])
		}
	}
	if len(msgs) < 2 || msgs[0] != "meshca starting" || msgs[len(msgs)-1] != "meshca stopped" {
		t.Fatalf("records %q: want meshca starting first and meshca stopped last", msgs)
	}
}

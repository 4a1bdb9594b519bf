package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// goBuild builds a static Linux binary of pkg (run from dir) for this machine's architecture.
func goBuild(t *testing.T, dir, pkg string, ldflags string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bin")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// tinyBinary is a small static program standing in for meshca where the test is about the archive.
func tinyBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module tiny\n\ngo 1.26\n",
		"main.go": "package main\n\nfunc main() { println(\"tiny\") }\n",
	}
	for name, s := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return goBuild(t, dir, ".", "-s -w")
}

func mkimage(t *testing.T, args ...string) (string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "image.tar")
	var stdout, stderr bytes.Buffer
	if code := run(append(args, "--out", out), &stdout, &stderr); code != 0 {
		t.Fatalf("mkimage %v: exit %d: %s", args, code, stderr.String())
	}
	return out, stdout.String()
}

// The real meshca, built as make image builds it, in an image whose configuration runs it as the nonroot user
// with no shell beside it; the binary taken back out of the layer runs `meshca version`.
func TestMeshcaImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds meshca with -trimpath (a full compile): skipped under -short; make test runs it")
	}
	bin := goBuild(t, "../..", "./cmd/meshca", "-s -w -X main.version=v9.8.7-test")
	path, stdout := mkimage(t, "--binary", bin, "--ref", "ghcr.io/meshca/meshca:v9.8.7-test",
		"--revision", "0123abc", "--created", "1700000000")
	if !strings.Contains(stdout, "ghcr.io/meshca/meshca:v9.8.7-test@sha256:") {
		t.Errorf("mkimage printed %q, want the reference and digest", stdout)
	}
	img := readImage(t, path)

	c := img.config.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/meshca"}) || img.config.OS != "linux" ||
		img.config.Architecture != runtime.GOARCH {
		t.Errorf("config user %q, entrypoint %q, platform %s/%s: want 65532:65532, [/meshca], linux/%s",
			c.User, c.Entrypoint, img.config.OS, img.config.Architecture, runtime.GOARCH)
	}
	for k, want := range map[string]string{"org.opencontainers.image.version": "v9.8.7-test",
		"org.opencontainers.image.revision": "0123abc", "org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.source":  "https://github.com/meshca/meshca",
		"org.opencontainers.image.created": "2023-11-14T22:13:20Z"} {
		if c.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], want)
		}
	}
	if len(img.docker[0].RepoTags) != 1 || img.docker[0].RepoTags[0] != "ghcr.io/meshca/meshca:v9.8.7-test" {
		t.Errorf("manifest.json RepoTags %v", img.docker[0].RepoTags)
	}

	// Nothing to exec but meshca: no shell, no bin directories at all.
	for name, h := range img.files {
		if strings.Contains(name, "bin/") || strings.HasSuffix(name, "/sh") || strings.Contains(name, "busybox") {
			t.Errorf("layer holds %s", name)
		}
		if h.Mode&0o6000 != 0 {
			t.Errorf("%s is setuid or setgid (mode %o)", name, h.Mode)
		}
	}
	if h := img.files["meshca"]; h == nil || h.Mode != 0o755 || h.Uid != 0 {
		t.Fatalf("/meshca entry %+v, want mode 755 owned by root (the nonroot user cannot replace it)", h)
	}
	if !strings.Contains(string(img.contents["etc/passwd"]), "nonroot:x:65532:65532:") ||
		!strings.Contains(string(img.contents["etc/group"]), "nonroot:x:65532:") {
		t.Errorf("/etc/passwd or /etc/group lack the nonroot user 65532")
	}
	if h := img.files["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("/tmp entry %+v, want a sticky world-writable directory", h)
	}

	// The Deployment runs as the image's user.
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					SecurityContext struct{ RunAsUser, RunAsGroup int }
				}
			}
		}
	}
	y, err := os.ReadFile("../../manifests/base/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(y, &d); err != nil {
		t.Fatal(err)
	}
	if sc := d.Spec.Template.Spec.SecurityContext; sc.RunAsUser != nonrootUID || sc.RunAsGroup != nonrootGID {
		t.Errorf("manifests/base/deployment.yaml runs as %d:%d, the image as %s", sc.RunAsUser, sc.RunAsGroup, c.User)
	}

	extracted := filepath.Join(t.TempDir(), "meshca")
	if err := os.WriteFile(extracted, img.contents["meshca"], 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(extracted, "version").CombinedOutput()
	if first, _, _ := strings.Cut(string(out), "\n"); err != nil || first != "meshca v9.8.7-test" {
		t.Fatalf("/meshca version: %v, printed %q; want exit 0 and a first line \"meshca v9.8.7-test\"", err, out)
	}
}

// The same inputs give the same image digest, byte for byte; another time or another binary gives another.
func TestReproducible(t *testing.T) {
	bin := tinyBinary(t)
	args := []string{"--binary", bin, "--ref", "example.com:5000/meshca:v1.2.3", "--created", "1700000000"}
	a, outA := mkimage(t, args...)
	b, outB := mkimage(t, args...)
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	ref := func(out string) string { s, _, _ := strings.Cut(out, " in "); return s }
	if !bytes.Equal(ab, bb) || ref(outA) != ref(outB) {
		t.Fatalf("two builds differ: %q vs %q", outA, outB)
	}
	_, later := mkimage(t, "--binary", bin, "--ref", "example.com:5000/meshca:v1.2.3", "--created", "1700000001")
	if ref(later) == ref(outA) {
		t.Errorf("another creation time gave the same digest: %q", later)
	}
	img := readImage(t, a)
	if _, ok := img.files["etc/ssl/certs/ca-certificates.crt"]; ok {
		t.Error("a CA bundle was added without --ca-bundle")
	}
	for name, h := range img.files {
		if !h.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s has time %v, want the --created time", name, h.ModTime)
		}
	}
}

// --ca-bundle installs the bundle where Go's crypto/x509 looks for system roots on Linux.
func TestCABundle(t *testing.T) {
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(bundle, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path, _ := mkimage(t, "--binary", tinyBinary(t), "--ref", "meshca:v1", "--ca-bundle", bundle)
	img := readImage(t, path)
	if got := img.contents["etc/ssl/certs/ca-certificates.crt"]; string(got) != "-----BEGIN CERTIFICATE-----\n" {
		t.Errorf("/etc/ssl/certs/ca-certificates.crt = %q", got)
	}
	if !slices.Contains(img.config.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("env %v lacks SSL_CERT_FILE", img.config.Config.Env)
	}
}

// Only a static Linux executable goes in: the image has no libc and no dynamic loader.
func TestRefusesWhatCannotRun(t *testing.T) {
	text := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, binary string
	}{
		{"a shell script", text},
		{"a missing file", filepath.Join(t.TempDir(), "absent")},
	}
	if sh, err := exec.LookPath("sh"); err == nil && runtime.GOOS == "linux" {
		sh, _ = filepath.EvalSymlinks(sh)
		if _, err := inspectBinary(sh); errors.Is(err, ErrNotStatic) && strings.Contains(err.Error(), "dynamically") {
			cases = append(cases, struct{ name, binary string }{"a dynamically linked program", sh})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Build(Spec{Binary: c.binary, Ref: Ref{"meshca", "v1"}}, &bytes.Buffer{})
			if !errors.Is(err, ErrNotStatic) {
				t.Fatalf("Build: %v, want ErrNotStatic", err)
			}
		})
	}
}

func TestParseRef(t *testing.T) {
	cases := []struct {
		name, ref string
		ok        bool
	}{
		{"a registry, a path and a semantic version", "ghcr.io/meshca/meshca:v0.1.0", true},
		{"a registry with a port", "localhost:5000/meshca:v0.1.0-3-gabc1234-dirty", true},
		{"a bare name", "meshca:dev", true},
		{"no tag", "ghcr.io/meshca/meshca", false},
		{"a port but no tag", "localhost:5000/meshca", false},
		{"the moving tag latest", "ghcr.io/meshca/meshca:latest", false},
		{"an upper-case path", "ghcr.io/MeshCA/meshca:v1", false},
		{"a tag starting with a dot", "meshca:.v1", false},
		{"an empty path component", "ghcr.io//meshca:v1", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRef(c.ref)
			if c.ok && (err != nil || r.String() != c.ref) {
				t.Fatalf("ParseRef(%q) = %v, %v", c.ref, r, err)
			}
			if !c.ok && !errors.Is(err, ErrBadRef) {
				t.Fatalf("ParseRef(%q) = %v, %v; want ErrBadRef", c.ref, r, err)
			}
		})
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"ghcr.io/meshca/meshca:v0.1.0", "localhost:5000/a/b:c", "a:latest", ":", "a/:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			if !errors.Is(err, ErrBadRef) {
				t.Fatalf("error %v is not ErrBadRef", err)
			}
			return
		}
		if r.Tag == "latest" || r.String() != s {
			t.Fatalf("ParseRef(%q) = %+v", s, r)
		}
	})
}

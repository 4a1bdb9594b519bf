package catest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/meshca/meshca/internal/testproc"
)

// binaries maps a test server to the environment variable that may name its binary and the project script
// that builds and caches it (outside the clone, in $HOME/.cache/meshca).
var binaries = map[string]struct{ env, script string }{
	"vault":           {"MESHCA_VAULT", "get-vault.sh"},
	"step-ca":         {"MESHCA_STEPCA", "get-stepca.sh"},
	"pilot-agent":     {"MESHCA_PILOT_AGENT", "get-pilot-agent.sh"},
	"pilot-discovery": {"MESHCA_PILOT_DISCOVERY", "get-pilot-discovery.sh"},
	"kube-apiserver":  {"MESHCA_KUBE_APISERVER", "get-k8s.sh"},
	"etcd":            {"MESHCA_ETCD", "get-k8s.sh"},
	"helm":            {"MESHCA_HELM", "get-helm.sh"},
	"promtool":        {"MESHCA_PROMTOOL", "get-promtool.sh"},
	"chromium":        {"MESHCA_CHROMIUM", "get-chromium.sh"},
}

var binMu sync.Mutex

// Binary returns the path of a real test server or tool binary ("vault", "step-ca", "pilot-agent",
// "pilot-discovery", "kube-apiserver", "etcd", "helm", "promtool", "chromium"). Under -short it skips the test.
// Otherwise it takes the path from the binary's MESHCA_* variable or runs the project's build script, which builds
// the binary once and caches it; a build failure fails the test. The path is empty when the script cannot
// provide the binary on this machine (chromium without root or apt-get): the caller skips.
func Binary(tb testing.TB, name string) string {
	tb.Helper()
	b, ok := binaries[name]
	if !ok {
		tb.Fatalf("catest: unknown test server %q", name)
	}
	if testing.Short() {
		tb.Skipf("needs a real %s: skipped under -short (make test runs it)", name)
	}
	if p := os.Getenv(b.env); p != "" {
		return p
	}
	binMu.Lock()
	defer binMu.Unlock()
	cmd := exec.Command("bash", filepath.Join(RepoRoot(tb), "scripts", b.script))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("catest: building %s with scripts/%s: %v", name, b.script, err)
	}
	p := strings.TrimSpace(string(out))
	if name == "kube-apiserver" || name == "etcd" { // get-k8s.sh prints the directory holding both
		p = filepath.Join(p, name)
	}
	os.Setenv(b.env, p)
	return p
}

// RepoRoot returns the directory holding meshca's go.mod.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago (testproc.FreePort).
func FreePort(tb testing.TB) int {
	tb.Helper()
	p, err := testproc.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func freePort() int {
	p, err := testproc.FreePort()
	if err != nil {
		panic(err)
	}
	return p
}

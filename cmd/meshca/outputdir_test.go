package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
)

// outputDirConfig writes a configuration with a file CA (its root CRL in cacerts) and crl.outputDir out, and
// returns its path and HTTP address.
func outputDirConfig(t *testing.T, dir, out string) (string, string) {
	t.Helper()
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local", RootCRL: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WriteDir(filepath.Join(dir, "cacerts")); err != nil {
		t.Fatal(err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t))
	config := filepath.Join(dir, "config.yaml")
	writeFile(t, config, fmt.Sprintf(`
issuance: {trustDomain: cluster.local}
server: {grpcAddr: "127.0.0.1:%d", httpAddr: %q, ipAddresses: ["127.0.0.1"]}
authn: `+jwksIssuer+`
crl: {stateFile: %q, outputDir: %q, interval: 1s, admin: {addr: "127.0.0.1:%d"}}
backends: [{name: file, file: {dir: %q}}]
adminTokenFile: %q
`, catest.FreePort(t), httpAddr, writeJWKS(t, dir), filepath.Join(dir, "state.json"), out,
		catest.FreePort(t), filepath.Join(dir, "cacerts"), filepath.Join(dir, "admin-token")))
	return config, httpAddr
}

// serve writes crl.outputDir/ca-crl.pem, equal to /crl.pem; a missing directory stops it at startup, naming
// the key.
func TestServeWritesTheCRLsToTheOutputDir(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	config, httpAddr := outputDirConfig(t, dir, out)
	serveConfig(t, config)
	catest.Eventually(t, 20*time.Second, "ca-crl.pem in crl.outputDir equal to /crl.pem", func() error {
		resp, err := http.Get("http://" + httpAddr + "/crl.pem")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		served, _ := io.ReadAll(resp.Body)
		written, err := os.ReadFile(filepath.Join(out, crl.OutputFile))
		switch {
		case err != nil:
			return err
		case resp.StatusCode != http.StatusOK:
			return fmt.Errorf("/crl.pem: %d", resp.StatusCode)
		case len(written) == 0 || !bytes.Equal(written, served):
			return errors.New("the file differs from /crl.pem")
		}
		lists, err := crl.ParseBundle(written)
		if err != nil || len(lists) != 2 {
			return fmt.Errorf("ca-crl.pem holds %d CRLs (%v), want the intermediate's and the root's", len(lists), err)
		}
		return nil
	})

	config, _ = outputDirConfig(t, t.TempDir(), filepath.Join(dir, "absent"))
	var stdout, stderr bytes.Buffer
	if code := runNoPanic(t, []string{"serve", "--config", config}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "crl.outputDir") {
		t.Fatalf("serve with a missing crl.outputDir: exit %d, want 1 naming the key:\n%s", code, stderr.String())
	}
}

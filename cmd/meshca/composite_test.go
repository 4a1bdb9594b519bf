package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr/composite"
)

// make run's dev mode issues composite certificates from its own composite CA (made by init): the chain
// verifies with composite.VerifyChain to /roots-composite.pem, the response ends with that root, and neither
// /roots.pem nor /roots-mldsa.pem holds it.
func TestDevModeIssuesCompositeCertificatesFromASeparatePKI(t *testing.T) {
	d := startPQCDev(t)
	key := catest.CompositeKey(t)
	csrPEM, _ := catest.CSR(t, catest.CSROptions{Key: key,
		URIs: []string{"spiffe://cluster.local/ns/default/sa/sleep"}})
	chain, err := d.issue(t, "sleep", csrPEM)
	if err != nil {
		t.Fatalf("composite CSR: %v\nlog:\n%s", err, d.stderr.String())
	}
	roots := getRoots(t, "http://"+d.httpAddr+"/roots-composite.pem")
	onDisk := readPEMCerts(t, filepath.Join(d.dir, compositeCACerts, file.RootCertFile))
	if len(roots) != 1 || !roots[0].Equal(onDisk[0]) || !chain[len(chain)-1].Equal(roots[0]) {
		t.Fatalf("/roots-composite.pem %v, chain ends with %q: want the dev composite root", roots,
			chain[len(chain)-1].Subject)
	}
	if err := composite.VerifyChain(chain, roots, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !backends.SameKey(backends.CertificateKey(chain[0]), key.Public()) {
		t.Error("the leaf does not certify the CSR's composite key")
	}
	for _, path := range []string{"/roots.pem", "/roots-mldsa.pem"} {
		for _, r := range getRoots(t, "http://"+d.httpAddr+path) {
			if backends.IsComposite(r) {
				t.Errorf("%s holds the composite root", path)
			}
		}
	}
}

// meshca init writes the composite CA beside the others, and leaves a complete one alone on a second run.
func TestInitWritesACompositeCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := initDev(dir, "cluster.local"); err != nil {
		t.Fatal(err)
	}
	hybrid := filepath.Join(dir, compositeCACerts)
	before, err := os.ReadFile(filepath.Join(hybrid, file.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	certs := readPEMCerts(t, filepath.Join(hybrid, file.CACertFile))
	if !backends.IsComposite(certs[0]) || !certs[0].IsCA {
		t.Fatalf("%s/ca-cert.pem is not a composite CA", compositeCACerts)
	}
	if _, err := initDev(dir, "cluster.local"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(hybrid, file.CAKeyFile)); string(after) != string(before) {
		t.Error("a second init replaced the composite CA")
	}
}

func TestCompositeSettingsMustComeTogether(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // "" = valid
	}{
		{"experimentalComposite without a composite CA is refused",
			"issuance: {trustDomain: cluster.local, experimentalComposite: true}\n" + okServer,
			"issuance.experimentalComposite: no backend has a composite CA"},
		{"a compositeDir that no CSR may reach is refused",
			"issuance: {trustDomain: cluster.local}\n" + okServer +
				"backends: [{name: cacerts, file: {dir: /etc/cacerts, compositeDir: /etc/composite}}]\n",
			"backends[0].file.compositeDir is set but issuance.experimentalComposite is false"},
		{"both together are accepted",
			"issuance: {trustDomain: cluster.local, experimentalComposite: true}\n" + okServer +
				"backends: [{name: cacerts, file: {dir: /etc/cacerts, compositeDir: /etc/composite}}]\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadBytes([]byte(tt.yaml))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

package crltest_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/crl"
)

// This test lives here rather than in crl so that crl's test binary (and its fuzzing build) does not pull in
// the file backend's Kubernetes client.

// TestFileBackendSignsCRLs checks that the file backend's backends.CRLSigner is a crl.Signer for its CA.
func TestFileBackendSignsCRLs(t *testing.T) {
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := g.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	b, err := file.New(context.Background(), file.Config{Dir: dir, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	store, err := crl.OpenFile(t.TempDir() + "/state.json")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg, err := crl.NewRegistry(context.Background(), crl.RegistryConfig{Store: store, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	var s crl.Signer = b
	c, err := reg.Issue(context.Background(), g.Intermediate, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.List.CheckSignatureFrom(g.Intermediate); err != nil {
		t.Fatal(err)
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

package loadtest

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
)

// --key composite against a meshca with a composite CA: every request is issued, and every chain verifies
// with composite.VerifyChain to the composite root given beside the serving root.
func TestRunCompositeAgainstMeshca(t *testing.T) {
	b, g := catest.CompositeFileBackend(t, nil)
	m := catest.StartMeshca(t, catest.MeshcaOptions{Backends: []ca.NamedBackend{{Name: "file", Backend: b}},
		Policy: &ca.Policy{TrustDomain: catest.TrustDomain, ExperimentalComposite: true}})
	cfg := config(m, 10, time.Second)
	cfg.Key = ParseKeyType("composite")
	// The roots file as --root reads it: the serving root and the composite root.
	rootsFile := filepath.Join(t.TempDir(), "roots.pem")
	serving, err := m.Issuer.Roots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pemRoots := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serving[0].Raw}), g.RootPEM...)
	if err := os.WriteFile(rootsFile, pemRoots, 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg.Roots, cfg.CompositeRoots, err = loadRoots(rootsFile); err != nil || len(cfg.CompositeRoots) != 1 {
		t.Fatalf("loadRoots: %v, %d composite roots", err, len(cfg.CompositeRoots))
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertConsistent(t, res)
	if res.Scheduled != 10 || res.OK != 10 || res.Invalid != 0 || len(res.Errors) != 0 || res.Key != KeyComposite {
		t.Fatalf("scheduled %d ok %d invalid %d errors %v (%v) key %s, want 10 composite all ok",
			res.Scheduled, res.OK, res.Invalid, res.Errors, res.Samples, res.Key)
	}
	// Without the composite root, every composite chain is an invalid response.
	cfg.CompositeRoots = nil
	if res, err = Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if res.Invalid != 10 {
		t.Fatalf("%d invalid responses without the composite root, want 10", res.Invalid)
	}
}

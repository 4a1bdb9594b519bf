package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
)

// --key mldsa65 against a meshca with an ML-DSA CA: every request is issued, and every chain verifies to the
// ML-DSA root given beside the serving root.
func TestRunMLDSAAgainstMeshca(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{
		Backends: []ca.NamedBackend{{Name: "file", Backend: catest.MLDSAFileBackend(t, nil)}},
		Policy:   &ca.Policy{TrustDomain: catest.TrustDomain, MLDSA: true}})
	cfg := config(m, 10, time.Second)
	cfg.Key, cfg.Roots = KeyMLDSA65, m.Roots.Clone()
	pqRoots, err := m.Issuer.PostQuantumRoots(context.Background())
	if err != nil || len(pqRoots) == 0 {
		t.Fatalf("ML-DSA roots: %v %v", pqRoots, err)
	}
	cfg.Roots.AddCert(pqRoots[0])
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertConsistent(t, res)
	if res.Scheduled != 10 || res.OK != 10 || res.Invalid != 0 || len(res.Errors) != 0 || res.Key != KeyMLDSA65 {
		t.Fatalf("scheduled %d ok %d invalid %d errors %v (%v) key %s, want 10 ML-DSA-65 all ok",
			res.Scheduled, res.OK, res.Invalid, res.Errors, res.Samples, res.Key)
	}
}

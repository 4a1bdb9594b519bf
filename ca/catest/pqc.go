package catest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends/file"
)

// MLDSAFileBackend starts a file backend with a fresh classical CA and, in mldsaDir, a fresh ML-DSA-65 CA;
// it is closed in Cleanup. Issuing ML-DSA certificates also needs ca.Policy.MLDSA.
func MLDSAFileBackend(tb testing.TB, reg prometheus.Registerer) *file.Backend {
	tb.Helper()
	dir, _ := FileCA(tb)
	g, err := file.Generate(file.GenerateOptions{Organization: TrustDomain, NewKey: file.NewMLDSA65Key})
	if err != nil {
		tb.Fatal(err)
	}
	pq := filepath.Join(tb.TempDir(), "cacerts-mldsa")
	if err := g.WriteDir(pq); err != nil {
		tb.Fatal(err)
	}
	b, err := file.New(context.Background(), file.Config{Dir: dir, MLDSADir: pq, ReloadInterval: 50 * time.Millisecond,
		Logger: DiscardLogger(), Registerer: reg})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// CompositeFileBackend starts a file backend with a fresh classical CA and, in compositeDir, a fresh composite
// ML-DSA-65 + ECDSA-P256 CA; it is closed in Cleanup. Issuing composite certificates also needs
// ca.Policy.ExperimentalComposite. It returns the composite CA as generated.
func CompositeFileBackend(tb testing.TB, reg prometheus.Registerer) (*file.Backend, *file.Generated) {
	tb.Helper()
	dir, _ := FileCA(tb)
	g, err := file.Generate(file.GenerateOptions{Organization: TrustDomain, NewKey: file.NewCompositeKey})
	if err != nil {
		tb.Fatal(err)
	}
	hybrid := filepath.Join(tb.TempDir(), "cacerts-composite")
	if err := g.WriteDir(hybrid); err != nil {
		tb.Fatal(err)
	}
	b, err := file.New(context.Background(), file.Config{Dir: dir, CompositeDir: hybrid,
		ReloadInterval: 50 * time.Millisecond, Logger: DiscardLogger(), Registerer: reg})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b, g
}

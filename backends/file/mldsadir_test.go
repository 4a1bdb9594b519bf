package file_test

import (
	"context"
	"errors"
	"testing"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
)

// mldsaDir loads an ML-DSA CA beside the classical one and serves its root as the post-quantum root; a
// classical CA there, or a directory without a CA, is refused at start.
func TestMLDSADirHoldsAnMLDSACA(t *testing.T) {
	classical, _ := catest.FileCA(t)
	pq := generateWith(t, file.GenerateOptions{NewKey: file.NewMLDSA65Key})
	tests := []struct {
		name string
		dir  string
		ok   bool
	}{
		{"an ML-DSA CA is loaded", writeDir(t, pq), true},
		{"a classical CA is refused", classical, false},
		{"a directory without a CA is refused", t.TempDir(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := file.New(context.Background(), file.Config{Dir: classical, MLDSADir: tt.dir,
				Logger: catest.DiscardLogger()})
			if !tt.ok {
				if err == nil {
					b.Close()
				}
				if !errors.Is(err, file.ErrInvalidCA) {
					t.Fatalf("New: %v, want ErrInvalidCA", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			roots, err := b.PostQuantumRoots(context.Background())
			if err != nil || len(roots) != 1 || !roots[0].Equal(pq.Root) {
				t.Fatalf("PostQuantumRoots = %d roots, %v; want the ML-DSA root", len(roots), err)
			}
		})
	}
}

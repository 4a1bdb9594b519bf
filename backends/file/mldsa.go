package file

import (
	"context"
	"crypto"
	"crypto/mldsa"
	"crypto/x509"
	"fmt"
)

// newMLDSA loads the ML-DSA CA of cfg.MLDSADir as a backend of its own (watched and reloaded like Dir); it
// must hold an ML-DSA key, so that a classical CA is never mistaken for it.
func newMLDSA(ctx context.Context, cfg Config) (*Backend, error) {
	sub := cfg
	sub.Dir, sub.MLDSADir, sub.CompositeDir, sub.Registerer = cfg.MLDSADir, "", "", nil
	sub.CRLDistributionPoints, sub.NextDir, sub.SigningRoot = nil, "", nil
	sub.Logger = cfg.Logger.With("ca", "ml-dsa")
	b, err := New(ctx, sub)
	if err != nil {
		return nil, fmt.Errorf("file: mldsaDir: %w", err)
	}
	if !b.isMLDSA() {
		_ = b.Close()
		return nil, fmt.Errorf("file: mldsaDir: %w: %s holds a %T key, not ML-DSA", ErrInvalidCA, CAKeyFile,
			b.current.Load().signer)
	}
	return b, nil
}

// isMLDSA reports whether the active CA signs with ML-DSA.
func (b *Backend) isMLDSA() bool {
	_, ok := b.current.Load().signer.(*mldsa.PrivateKey)
	return ok
}

// PostQuantumRoots returns the roots of the ML-DSA CA (MLDSADir), or none.
func (b *Backend) PostQuantumRoots(ctx context.Context) ([]*x509.Certificate, error) {
	if b.mldsa == nil {
		return nil, nil
	}
	return b.mldsa.Roots(ctx)
}

// NewMLDSA65Key returns a new ML-DSA-65 key (FIPS 204), for GenerateOptions.NewKey.
func NewMLDSA65Key() (crypto.Signer, error) { return mldsa.GenerateKey(mldsa.MLDSA65()) }

package composite_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/meshca/meshca/csr/composite"
)

// Each composite algorithm names the parameter set of its ML-DSA component; the zero Algorithm names none.
func TestAlgorithmMLDSAParameters(t *testing.T) {
	tests := []struct {
		name string
		alg  composite.Algorithm
		want composite.MLDSAParameters
	}{
		{"MLDSA44-ECDSA-P256-SHA256 has ML-DSA-44", composite.MLDSA44ECDSAP256SHA256(), composite.MLDSA44()},
		{"MLDSA65-ECDSA-P256-SHA512 has ML-DSA-65", composite.MLDSA65ECDSAP256SHA512(), composite.MLDSA65()},
		{"MLDSA65-ECDSA-P384-SHA512 has ML-DSA-65", composite.MLDSA65ECDSAP384SHA512(), composite.MLDSA65()},
		{"MLDSA87-ECDSA-P384-SHA512 has ML-DSA-87", composite.MLDSA87ECDSAP384SHA512(), composite.MLDSA87()},
		{"MLDSA87-ECDSA-P521-SHA512 has ML-DSA-87", composite.MLDSA87ECDSAP521SHA512(), composite.MLDSA87()},
		{"the zero Algorithm has the zero parameter set", composite.Algorithm{}, composite.MLDSAParameters{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.alg.MLDSAParameters(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// A pure ML-DSA signature verifies under a context of up to 255 bytes (FIPS 204); a longer one is refused.
func TestVerifyMLDSAContextBound(t *testing.T) {
	key, err := composite.GenerateMLDSAKey(composite.MLDSA65(), nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("m")
	tests := []struct {
		name    string
		ctx     string
		wantErr error
	}{
		{"a 255-byte context verifies", strings.Repeat("c", 255), nil},
		{"a 256-byte context is refused", strings.Repeat("c", 256), composite.ErrContextTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := key.Sign(nil, msg, &composite.Options{Context: tt.ctx[:255]})
			if err != nil {
				t.Fatal(err)
			}
			err = composite.VerifyMLDSA(key.PublicKey(), msg, sig, &composite.Options{Context: tt.ctx})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("the random source failed") }

// Sign feeds the ECDSA signature from the caller's rand, and from crypto/rand when rand is nil. Go 1.26 and
// later ignore a caller's rand unless GODEBUG=cryptocustomrand=1, so the test sets it, and skips if this Go
// no longer honours it.
func TestSignReadsTheCallersRand(t *testing.T) {
	t.Setenv("GODEBUG", "cryptocustomrand=1")
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("m"))
	if _, err := ecdsa.SignASN1(failingReader{}, ec, digest[:]); err == nil {
		t.Skip("crypto/ecdsa ignores a caller's rand even with GODEBUG=cryptocustomrand=1")
	}
	key := newKey(t, composite.MLDSA65ECDSAP256SHA512())
	tests := []struct {
		name    string
		rand    io.Reader
		wantErr bool
	}{
		{"a failing rand fails the signature", failingReader{}, true},
		{"a nil rand is crypto/rand", nil, false},
		{"crypto/rand", rand.Reader, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := key.Sign(tt.rand, []byte("m"), nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Sign = %v, want an error: %v", err, tt.wantErr)
			}
			if err == nil {
				if err := composite.Verify(key.PublicKey(), []byte("m"), sig, nil); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

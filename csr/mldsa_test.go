package csr_test

import (
	"crypto"
	"crypto/mldsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"slices"
	"testing"

	"github.com/meshca/meshca/csr"
)

// ML-DSA signature algorithms (RFC 9881 §2): the key's OID, no parameters, no pre-hash.
var (
	algMLDSA44 = algo(0, 2, 16, 840, 1, 101, 3, 4, 3, 17)
	algMLDSA65 = algo(0, 2, 16, 840, 1, 101, 3, 4, 3, 18)
	algMLDSA87 = algo(0, 2, 16, 840, 1, 101, 3, 4, 3, 19)
)

var withMLDSA = csr.Options{MLDSA: true}

func mldsaKey(tb testing.TB, p mldsa.Parameters) crypto.Signer {
	tb.Helper()
	return must(tb, func() (*mldsa.PrivateKey, error) { return mldsa.GenerateKey(p) })
}

// ML-DSA CSRs of every parameter set are accepted when Options.MLDSA says so, named by KeyType, and refused
// by the default key policy.
func TestParseWithMLDSAAcceptsEachParameterSetOnlyWhenEnabled(t *testing.T) {
	spiffe := []pkix.Extension{san(t, true, uriName(sleepID))}
	for _, tc := range []struct {
		keyType string
		params  mldsa.Parameters
		alg     sigAlg
	}{
		{"ML-DSA-44", mldsa.MLDSA44(), algMLDSA44},
		{"ML-DSA-65", mldsa.MLDSA65(), algMLDSA65},
		{"ML-DSA-87", mldsa.MLDSA87(), algMLDSA87},
	} {
		t.Run(tc.keyType, func(t *testing.T) {
			in := rawCSR{key: mldsaKey(t, tc.params), exts: spiffe, alg: &tc.alg}.build(t)
			r, err := csr.ParseWith(in, withMLDSA)
			if err != nil || r.KeyType != tc.keyType || !slices.Contains(csr.KeyTypes(), r.KeyType) {
				t.Fatalf("ParseWith(MLDSA) = %v, %v; want key type %s", r, err, tc.keyType)
			}
			if _, err := csr.Parse(in); !errors.Is(err, csr.ErrKeyPolicy) {
				t.Fatalf("Parse without MLDSA: %v, want ErrKeyPolicy", err)
			}
		})
	}
}

// The adversarial rules hold for ML-DSA CSRs too, with the same sentinels.
func TestParseWithMLDSARefusesAdversarialCSRs(t *testing.T) {
	key := mldsaKey(t, mldsa.MLDSA65())
	spiffe := san(t, true, uriName(sleepID))
	build := func(alg sigAlg, exts ...pkix.Extension) []byte {
		return rawCSR{key: key, exts: append([]pkix.Extension{spiffe}, exts...), alg: &alg}.build(t)
	}
	garbage := algMLDSA65
	garbage.garbage = true
	for _, tc := range []adversarialCase{
		{"a bad ML-DSA self-signature is invalid", build(garbage), csr.ErrInvalidCSR},
		{"an ML-DSA-65 key signed as ML-DSA-44 is refused by key policy", build(algMLDSA44), csr.ErrKeyPolicy},
		{"an ML-DSA key under an ECDSA signature algorithm is refused by key policy",
			build(sigAlg{id: algECDSAWithSHA256.id, garbage: true}), csr.ErrKeyPolicy},
		{"keyCertSign on an ML-DSA key is unsupported", build(algMLDSA65, keyUsage(t, kuKeyCertSign)),
			csr.ErrUnsupportedRequest},
		{"keyEncipherment on an ML-DSA key is unsupported", build(algMLDSA65, keyUsage(t, kuKeyEncipherment)),
			csr.ErrUnsupportedRequest},
		{"an ML-DSA CSR with a private extension is unsupported",
			build(algMLDSA65, ext(t, oidPrivate, false, []byte{5, 0})), csr.ErrUnsupportedRequest},
		{"an ML-DSA CSR with a codeSigning EKU is unsupported",
			build(algMLDSA65, extKeyUsage(t, oidCodeSigning)), csr.ErrUnsupportedRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := csr.ParseWith(tc.in, withMLDSA)
			if !errors.Is(err, tc.want) || (tc.want == csr.ErrInvalidCSR && errors.Is(err, csr.ErrUnsupportedRequest)) {
				t.Fatalf("ParseWith: %v, want an error wrapping %q (and nothing more precise)", err, tc.want)
			}
			if r != nil {
				t.Fatalf("ParseWith returned a Request along with %v", err)
			}
		})
	}
}

// FuzzParseRawWithMLDSA is FuzzParseRaw with ML-DSA keys allowed: an accepted ML-DSA CSR is self-signed with
// its own parameter set and verifies; everything else meets the classical policy.
func FuzzParseRawWithMLDSA(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		if b, _ := pem.Decode(s); b != nil {
			f.Add(b.Bytes)
		}
	}
	spiffe := []pkix.Extension{san(f, true, uriName(sleepID))}
	f.Add(rawCSR{key: mldsaKey(f, mldsa.MLDSA44()), exts: spiffe, alg: &algMLDSA44}.der(f))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := csr.ParseRawWith(in, withMLDSA)
		if err != nil || r.CSR.PublicKeyAlgorithm != x509.MLDSA {
			checkOutcome(t, r, err)
			return
		}
		if r.CSR.SignatureAlgorithm.String() != r.KeyType || r.CSR.CheckSignature() != nil {
			t.Fatalf("accepted a %s key signed with %s", r.KeyType, r.CSR.SignatureAlgorithm)
		}
	})
}

package csr_test

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net/url"
	"testing"

	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/csr/composite"
)

var withComposite = csr.Options{Composite: true}

func compositeCSR(tb testing.TB, alg composite.Algorithm, exts ...pkix.Extension) []byte {
	tb.Helper()
	key := must(tb, func() (*composite.PrivateKey, error) { return composite.GenerateKey(alg, rand.Reader) })
	u, _ := url.Parse(sleepID)
	der := must(tb, func() ([]byte, error) {
		return composite.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u},
			ExtraExtensions: exts}, key)
	})
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// A composite ML-DSA-65+ECDSA-P256 CSR is accepted only with Options.Composite, and holds to the same rules.
func TestParseWithCompositeAcceptsOnlyMLDSA65ECDSAP256(t *testing.T) {
	good := compositeCSR(t, composite.MLDSA65ECDSAP256SHA512())
	r, err := csr.ParseWith(good, withComposite)
	if err != nil || r.KeyType != "MLDSA65-ECDSA-P256" || len(r.CSR.URIs) != 1 || r.CSR.URIs[0].String() != sleepID {
		t.Fatalf("ParseWith(Composite) = %+v, %v", r, err)
	}
	block, _ := pem.Decode(good)
	flipped := append([]byte(nil), block.Bytes...)
	flipped[len(flipped)-40] ^= 1 // in the ECDSA half of the signature
	for _, tc := range []adversarialCase{
		{"without Options.Composite a composite CSR is refused by key policy", good, csr.ErrKeyPolicy},
		{"a flipped signature bit is invalid",
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: flipped}), csr.ErrInvalidCSR},
		{"another composite combination is refused by key policy",
			compositeCSR(t, composite.MLDSA44ECDSAP256SHA256()), csr.ErrKeyPolicy},
		{"keyCertSign on a composite key is unsupported",
			compositeCSR(t, composite.MLDSA65ECDSAP256SHA512(), keyUsage(t, kuKeyCertSign)), csr.ErrUnsupportedRequest},
		{"a private extension is unsupported",
			compositeCSR(t, composite.MLDSA65ECDSAP256SHA512(), ext(t, oidPrivate, false, []byte{5, 0})),
			csr.ErrUnsupportedRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := withComposite
			if tc.name == "without Options.Composite a composite CSR is refused by key policy" {
				opts = csr.Options{MLDSA: true}
			}
			r, err := csr.ParseWith(tc.in, opts)
			if !errors.Is(err, tc.want) || r != nil {
				t.Fatalf("ParseWith: %v, %v; want an error wrapping %q", r, err, tc.want)
			}
		})
	}
}

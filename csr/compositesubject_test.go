package csr_test

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"testing"

	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/csr/composite"
)

// A composite CSR reports a subject exactly when it holds one, as a classical CSR does (audit records say so):
// an empty subject is the two-byte empty SEQUENCE, and one attribute is more.
func TestCompositeCSRReportsItsSubject(t *testing.T) {
	key := must(t, func() (*composite.PrivateKey, error) {
		return composite.GenerateKey(composite.MLDSA65ECDSAP256SHA512(), rand.Reader)
	})
	u, _ := url.Parse(sleepID)
	for _, tt := range []struct {
		name    string
		subject pkix.Name
		want    bool
	}{
		{"an empty subject is no subject", pkix.Name{}, false},
		{"a one-letter common name is a subject", pkix.Name{CommonName: "a"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			der := must(t, func() ([]byte, error) {
				return composite.CreateCertificateRequest(rand.Reader,
					&x509.CertificateRequest{Subject: tt.subject, URIs: []*url.URL{u}}, key)
			})
			r, err := csr.ParseWith(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
				withComposite)
			if err != nil {
				t.Fatal(err)
			}
			if r.HasSubject != tt.want {
				t.Errorf("HasSubject = %v, want %v (raw subject %x)", r.HasSubject, tt.want, r.CSR.RawSubject)
			}
		})
	}
}

// Package certtest makes certificates, keys and CRLs at fixed times for the expiry scanner's tests.
package certtest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshca/meshca/internal/testpki"
)

// T0 is the fixed time the report tests are made at: nothing in them depends on the real clock.
var T0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Day is 24 hours.
const Day = 24 * time.Hour

// Issued is a certificate and its key, made by the tests on real crypto.
type Issued struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Spec describes a certificate to make. Keys are fresh, so only what the report prints is fixed.
type Spec struct {
	CN        string
	Serial    int64
	NotBefore time.Time
	Life      time.Duration
	CA        bool
	SPIFFE    string
	RSABits   int // 0: ECDSA P-256
	Parent    *Issued
}

// Make creates the certificate s describes, self-signed unless s.Parent is set.
func Make(tb testing.TB, s Spec) *Issued {
	tb.Helper()
	var key crypto.Signer
	if s.RSABits > 0 {
		rsaKey, err := rsa.GenerateKey(rand.Reader, s.RSABits)
		if err != nil {
			tb.Fatal(err)
		}
		key = rsaKey
	} else {
		key = testpki.Key(tb)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(s.Serial),
		Subject:   pkix.Name{CommonName: s.CN, Organization: []string{"meshca test"}},
		NotBefore: s.NotBefore, NotAfter: s.NotBefore.Add(s.Life), BasicConstraintsValid: true, IsCA: s.CA}
	if s.CA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if s.SPIFFE != "" {
		u, err := url.Parse(s.SPIFFE)
		if err != nil {
			tb.Fatal(err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	var parent *x509.Certificate
	parentKey := key
	if s.Parent != nil {
		parent, parentKey = s.Parent.Cert, s.Parent.Key
	}
	return &Issued{Cert: testpki.Sign(tb, tmpl, parent, key.Public(), parentKey), Key: key}
}

// CertsPEM encodes certificates as one PEM document.
func CertsPEM(certs ...*Issued) []byte {
	var cs []*x509.Certificate
	for _, c := range certs {
		cs = append(cs, c.Cert)
	}
	return testpki.CertsPEM(cs...)
}

// KeyPEM encodes a private key as PKCS #8 PEM.
func KeyPEM(tb testing.TB, k crypto.Signer) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// CRLPEM makes a CRL named as Issued by ca's subject and signed by signer (ca.key unless given).
func CRLPEM(tb testing.TB, ca *Issued, signer crypto.Signer, number int64, thisUpdate time.Time, life time.Duration,
	revoked ...int64) []byte {
	tb.Helper()
	if signer == nil {
		signer = ca.Key
	}
	var serials []*big.Int
	for _, s := range revoked {
		serials = append(serials, big.NewInt(s))
	}
	der := testpki.CRL(tb, ca.Cert, signer, number, thisUpdate, thisUpdate.Add(life), serials...)
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// WriteFiles writes files into dir, creating it.
func WriteFiles(tb testing.TB, dir string, files map[string][]byte) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// PKI is a root and an intermediate valid around T0.
type PKI struct{ Root, Inter *Issued }

// NewPKI makes a root (serial 1) and an intermediate (serial 2) valid around T0.
func NewPKI(tb testing.TB) PKI {
	tb.Helper()
	root := Make(tb, Spec{CN: "meshca test root", Serial: 1, NotBefore: T0.Add(-365 * Day), Life: 10 * 365 * Day,
		CA: true})
	inter := Make(tb, Spec{CN: "meshca test intermediate", Serial: 2, NotBefore: T0.Add(-340 * Day),
		Life: 365 * Day, CA: true, Parent: root})
	return PKI{root, inter}
}

// Gather collects reg and returns every sample of the metric name, keyed by its label values joined with ",".
func Gather(tb testing.TB, reg prometheus.Gatherer, name string) map[string]float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelKey(m)] = value(m)
		}
	}
	return out
}

// labelKey joins a sample's labels as name=value,...
func labelKey(m *dto.Metric) string {
	var b bytes.Buffer
	for i, l := range m.GetLabel() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.GetName() + "=" + l.GetValue())
	}
	return b.String()
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

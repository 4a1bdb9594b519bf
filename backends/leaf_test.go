package backends

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/meshca/meshca/internal/testpki"
)

// Test builders for CheckLeaf: a CA on real crypto, the template of an honest workload leaf, and raw
// subjectAltName entries that crypto/x509 cannot produce from its own fields.

// testCA is a self-signed ECDSA CA that signs the leaves of a test.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestCA(tb testing.TB) *testCA {
	tb.Helper()
	key := ecKey(tb)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "checkleaf test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return &testCA{cert: sign(tb, tmpl, tmpl, key.Public(), key), key: key}
}

// leafIssuer signs test leaves: testCA (ECDSA) or compositeTestCA.
type leafIssuer interface {
	issue(tb testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) []*x509.Certificate
}

// testPKI is a CA and the kind of workload key it certifies.
type testPKI struct {
	name   string
	ca     leafIssuer
	newKey func(testing.TB) crypto.Signer
}

// testPKIs are the classical and the composite PKI CheckLeaf's tables run against.
func testPKIs(tb testing.TB) []testPKI {
	return []testPKI{{"ECDSA", newTestCA(tb), ecKey}, {"composite", newCompositeTestCA(tb), newCompositeKey}}
}

// issue signs tmpl for pub with the CA and returns the chain leaf, CA.
func (ca *testCA) issue(tb testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) []*x509.Certificate {
	tb.Helper()
	return []*x509.Certificate{sign(tb, tmpl, ca.cert, pub, ca.key), ca.cert}
}

func sign(tb testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	tb.Helper()
	return testpki.Sign(tb, tmpl, parent, pub, key)
}

// honestTemplate is the workload certificate req asks for, as the file backend builds it.
func honestTemplate(req *SignRequest) *x509.Certificate {
	ku := x509.KeyUsageDigitalSignature
	if _, ok := req.PublicKey.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: req.Subject,
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(req.TTL),
		KeyUsage:    ku,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        req.URIs, DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
		BasicConstraintsValid: true,
	}
}

// workloadRequest is a request for one SPIFFE ID with a fresh key.
func workloadRequest(tb testing.TB, key crypto.Signer, id string) *SignRequest {
	tb.Helper()
	u, err := url.Parse(id)
	if err != nil {
		tb.Fatal(err)
	}
	return &SignRequest{PublicKey: key.Public(), URIs: []*url.URL{u}, TTL: time.Hour}
}

func ecKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	return testpki.Key(tb)
}

func rsaKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// sanExtension encodes a subjectAltName extension holding names.
func sanExtension(tb testing.TB, names ...asn1.RawValue) pkix.Extension {
	tb.Helper()
	der, err := asn1.Marshal(names)
	if err != nil {
		tb.Fatal(err)
	}
	return pkix.Extension{Id: oidSubjectAltName, Value: der}
}

func uriName(s string) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagURI, Bytes: []byte(s)}
}

// upnName is a Microsoft UPN otherName (1.3.6.1.4.1.311.20.2.3), which Active Directory maps to a user.
func upnName(tb testing.TB, upn string) asn1.RawValue {
	tb.Helper()
	value, err := asn1.MarshalWithParams(upn, "utf8,explicit,tag:0")
	if err != nil {
		tb.Fatal(err)
	}
	typeID, err := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3})
	if err != nil {
		tb.Fatal(err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagOtherName, IsCompound: true,
		Bytes: append(typeID, value...)}
}

func registeredIDName(tb testing.TB, oid asn1.ObjectIdentifier) asn1.RawValue {
	tb.Helper()
	der, err := asn1.Marshal(oid)
	if err != nil {
		tb.Fatal(err)
	}
	var raw asn1.RawValue
	if _, err := asn1.Unmarshal(der, &raw); err != nil {
		tb.Fatal(err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagRegisteredID, Bytes: raw.Bytes}
}

func directoryName(tb testing.TB, n pkix.Name) asn1.RawValue {
	tb.Helper()
	der, err := asn1.Marshal(n.ToRDNSequence())
	if err != nil {
		tb.Fatal(err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagDirectoryName, IsCompound: true, Bytes: der}
}

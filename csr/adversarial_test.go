package csr_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
)

const sleepID = "spiffe://cluster.local/ns/default/sa/sleep"

// OIDs of what adversarial CSRs ask for.
var (
	oidServerAuth   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidClientAuth   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	oidCodeSigning  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 3}
	oidEmailProt    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 4}
	oidTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
	oidOCSPSigning  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 9}
	oidAnyEKU       = asn1.ObjectIdentifier{2, 5, 29, 37, 0}
	oidPrivate      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
	oidUPN          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
	oidCAIssuers    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 2}
)

// Key usage bits, RFC 5280 §4.2.1.3.
const (
	kuDigitalSignature = iota
	kuContentCommitment
	kuKeyEncipherment
	kuDataEncipherment
	kuKeyAgreement
	kuKeyCertSign
	kuCRLSign
	kuEncipherOnly
	kuDecipherOnly
)

// adversarialCase is one CSR meshca must refuse, and the sentinel the refusal must wrap.
type adversarialCase struct {
	name string
	in   []byte
	want error
}

// TestParseRefusesAdversarialCSRs: each CSR asks for something meshca does not issue, or is not what it
// claims to be. Parse must refuse it with the right sentinel and return no Request.
func TestParseRefusesAdversarialCSRs(t *testing.T) {
	cases := append(append(append(sanCases(t), usageCases(t)...), extensionCases(t)...), structureCases(t)...)
	cases = append(cases, signatureCases(t)...)
	if len(cases) < 40 {
		t.Fatalf("only %d adversarial cases; keep at least 40", len(cases))
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("two cases are named %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			r, err := csr.Parse(tc.in)
			if !errors.Is(err, tc.want) || (tc.want == csr.ErrInvalidCSR && errors.Is(err, csr.ErrUnsupportedRequest)) {
				t.Fatalf("Parse: %v, want an error wrapping %q (and nothing more precise)", err, tc.want)
			}
			if r != nil {
				t.Fatalf("Parse returned a Request along with %v", err)
			}
			if len(err.Error()) > 1024 {
				t.Errorf("error message is %d bytes long; caller-supplied content must stay bounded", len(err.Error()))
			}
		})
	}
}

// withSPIFFE builds a P-256 CSR asking for sleepID plus exts.
func withSPIFFE(tb testing.TB, exts ...pkix.Extension) []byte {
	tb.Helper()
	return rawCSR{exts: append([]pkix.Extension{san(tb, true, uriName(sleepID))}, exts...)}.build(tb)
}

func sanCases(t *testing.T) []adversarialCase {
	upn := append(marshal(t, oidUPN), marshal(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0,
		IsCompound: true, Bytes: must(t, func() ([]byte, error) {
			return asn1.MarshalWithParams("admin@corp.example", "utf8")
		})})...)
	masters := marshal(t, pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}.ToRDNSequence())
	party := marshal(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true,
		Bytes: marshal(t, "evil")})
	spiffe := uriName(sleepID)
	sanWith := func(names ...asn1.RawValue) []byte {
		return rawCSR{exts: []pkix.Extension{san(t, true, names...)}}.build(t)
	}
	withTrailing := san(t, true, spiffe)
	withTrailing.Value = append(withTrailing.Value, 0, 0)
	return []adversarialCase{
		{"an otherName SAN (a UPN) next to the SPIFFE ID is unsupported",
			sanWith(spiffe, generalName(0, true, upn)), csr.ErrUnsupportedRequest},
		{"an otherName SAN alone is unsupported", sanWith(generalName(0, true, upn)), csr.ErrUnsupportedRequest},
		{"a directoryName SAN naming CN=admin,O=system:masters is unsupported",
			sanWith(spiffe, generalName(4, true, masters)), csr.ErrUnsupportedRequest},
		{"a registeredID SAN is unsupported",
			sanWith(spiffe, generalName(8, false, marshal(t, oidPrivate)[2:])), csr.ErrUnsupportedRequest},
		{"an x400Address SAN is unsupported",
			sanWith(spiffe, generalName(3, true, []byte{0x30, 0})), csr.ErrUnsupportedRequest},
		{"an ediPartyName SAN is unsupported", sanWith(spiffe, generalName(5, true, party)), csr.ErrUnsupportedRequest},
		{"a dNSName encoded as constructed is invalid",
			sanWith(spiffe, generalName(2, true, marshal(t, "evil.example"))), csr.ErrInvalidCSR},
		{"a URI SAN with a universal tag instead of a context tag is invalid",
			sanWith(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagIA5String, Bytes: []byte(sleepID)}),
			csr.ErrInvalidCSR},
		{"a SAN entry with the universal tag 6 (an OID) instead of [6] is invalid",
			sanWith(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagOID, Bytes: []byte{42}}), csr.ErrInvalidCSR},
		{"a SAN entry with the application tag [APPLICATION 2] instead of [2] is invalid",
			sanWith(spiffe, asn1.RawValue{Class: asn1.ClassApplication, Tag: 2, Bytes: []byte("evil.example")}),
			csr.ErrInvalidCSR},
		{"a SAN with an undefined GeneralName tag [9] is invalid",
			sanWith(spiffe, generalName(9, false, []byte("x"))), csr.ErrInvalidCSR},
		{"an empty subjectAltName is invalid", sanWith(), csr.ErrInvalidCSR},
		{"a subjectAltName with trailing bytes is invalid", rawCSR{exts: []pkix.Extension{withTrailing}}.build(t),
			csr.ErrInvalidCSR},
		{"a subjectAltName that is not a sequence is invalid",
			rawCSR{exts: []pkix.Extension{ext(t, oidSAN, true, sleepID)}}.build(t), csr.ErrInvalidCSR},
		{"two subjectAltName extensions are invalid",
			rawCSR{exts: []pkix.Extension{san(t, true, spiffe), san(t, false, spiffe)}}.build(t), csr.ErrInvalidCSR},
	}
}

func usageCases(t *testing.T) []adversarialCase {
	rsaKey := catest.RSAKey(t, 2048)
	ed := catest.Ed25519Key(t)
	spiffe := san(t, true, uriName(sleepID))
	bitString := func(n int) pkix.Extension {
		return ext(t, oidKeyUsage, true, asn1.BitString{BitLength: n, Bytes: []byte{0}})
	}
	bc := func(v any) pkix.Extension { return ext(t, oidBasicConstraints, true, v) }
	return []adversarialCase{
		{"keyUsage keyCertSign is unsupported", withSPIFFE(t, keyUsage(t, kuKeyCertSign)), csr.ErrUnsupportedRequest},
		{"keyUsage cRLSign is unsupported", withSPIFFE(t, keyUsage(t, kuCRLSign)), csr.ErrUnsupportedRequest},
		{"keyUsage digitalSignature with keyCertSign and cRLSign is unsupported",
			withSPIFFE(t, keyUsage(t, kuDigitalSignature, kuKeyCertSign, kuCRLSign)), csr.ErrUnsupportedRequest},
		{"keyUsage contentCommitment (nonRepudiation) is unsupported",
			withSPIFFE(t, keyUsage(t, kuDigitalSignature, kuContentCommitment)), csr.ErrUnsupportedRequest},
		{"keyUsage dataEncipherment is unsupported",
			withSPIFFE(t, keyUsage(t, kuDataEncipherment)), csr.ErrUnsupportedRequest},
		{"keyUsage keyAgreement is unsupported", withSPIFFE(t, keyUsage(t, kuKeyAgreement)), csr.ErrUnsupportedRequest},
		{"keyUsage encipherOnly is unsupported", withSPIFFE(t, keyUsage(t, kuEncipherOnly)), csr.ErrUnsupportedRequest},
		{"keyUsage decipherOnly is unsupported", withSPIFFE(t, keyUsage(t, kuDecipherOnly)), csr.ErrUnsupportedRequest},
		{"keyUsage keyEncipherment for an ECDSA key is unsupported",
			withSPIFFE(t, keyUsage(t, kuDigitalSignature, kuKeyEncipherment)), csr.ErrUnsupportedRequest},
		{"keyUsage keyEncipherment for an Ed25519 key is unsupported",
			rawCSR{key: ed, exts: []pkix.Extension{spiffe, keyUsage(t, kuKeyEncipherment)}}.build(t),
			csr.ErrUnsupportedRequest},
		{"keyUsage keyCertSign for an RSA key is unsupported",
			rawCSR{key: rsaKey, exts: []pkix.Extension{spiffe, keyUsage(t, kuKeyEncipherment, kuKeyCertSign)}}.build(t),
			csr.ErrUnsupportedRequest},
		{"a keyUsage with no bit set is invalid", withSPIFFE(t, bitString(0)), csr.ErrInvalidCSR},
		{"a keyUsage that is not a bit string is invalid",
			withSPIFFE(t, ext(t, oidKeyUsage, true, 1)), csr.ErrInvalidCSR},
		{"extKeyUsage OCSPSigning is unsupported",
			withSPIFFE(t, extKeyUsage(t, oidOCSPSigning)), csr.ErrUnsupportedRequest},
		{
			"extKeyUsage codeSigning is unsupported",
			withSPIFFE(t, extKeyUsage(t, oidCodeSigning)),
			csr.ErrUnsupportedRequest,
		},
		{"extKeyUsage anyExtendedKeyUsage is unsupported",
			withSPIFFE(t, extKeyUsage(t, oidAnyEKU)), csr.ErrUnsupportedRequest},
		{"extKeyUsage timeStamping is unsupported",
			withSPIFFE(t, extKeyUsage(t, oidTimeStamping)), csr.ErrUnsupportedRequest},
		{"extKeyUsage emailProtection is unsupported",
			withSPIFFE(t, extKeyUsage(t, oidEmailProt)), csr.ErrUnsupportedRequest},
		{"extKeyUsage serverAuth, clientAuth and codeSigning together are unsupported",
			withSPIFFE(t, extKeyUsage(t, oidServerAuth, oidClientAuth, oidCodeSigning)), csr.ErrUnsupportedRequest},
		{"an unknown extKeyUsage purpose is unsupported",
			withSPIFFE(t, extKeyUsage(t, oidPrivate)), csr.ErrUnsupportedRequest},
		{"an empty extKeyUsage is invalid", withSPIFFE(t, extKeyUsage(t)), csr.ErrInvalidCSR},
		{"an extKeyUsage that is not a sequence is invalid",
			withSPIFFE(t, ext(t, oidExtKeyUsage, false, oidServerAuth)), csr.ErrInvalidCSR},
		{"basicConstraints with cA=FALSE and a pathLenConstraint is unsupported",
			withSPIFFE(t, bc(struct {
				IsCA    bool `asn1:"optional"`
				PathLen int
			}{false, 0})), csr.ErrUnsupportedRequest},
		{"a malformed basicConstraints is invalid", withSPIFFE(t, bc([]byte{4, 0})), csr.ErrInvalidCSR},
		{"a malformed subjectKeyIdentifier is invalid",
			withSPIFFE(t, ext(t, oidSKI, false, []byte{0x30, 0})), csr.ErrInvalidCSR},
		{"an empty subjectKeyIdentifier is invalid", withSPIFFE(t, ext(t, oidSKI, false, []byte{})), csr.ErrInvalidCSR},
	}
}

func extensionCases(t *testing.T) []adversarialCase {
	accessDesc := marshal(t, []struct {
		Method   asn1.ObjectIdentifier
		Location asn1.RawValue
	}{{oidCAIssuers, uriName("http://evil.example/ca.crt")}})
	nameConstraints := marshal(t, struct {
		Permitted []struct{ Base asn1.RawValue } `asn1:"optional,tag:0"`
	}{[]struct{ Base asn1.RawValue }{{generalName(2, false, []byte("cluster.local"))}}})
	crlDP := marshal(t, []asn1.RawValue{{Tag: asn1.TagSequence, IsCompound: true, Bytes: marshal(t,
		asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: marshal(t,
			asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: marshal(t,
				uriName("http://evil.example/crl"))})})}})
	oid := func(arcs ...int) asn1.ObjectIdentifier { return arcs }
	return []adversarialCase{
		{"nameConstraints are unsupported", withSPIFFE(t, ext(t, oid(2, 5, 29, 30), true, nameConstraints)),
			csr.ErrUnsupportedRequest},
		{"certificatePolicies are unsupported", withSPIFFE(t, ext(t, oid(2, 5, 29, 32), false,
			[]struct{ P asn1.ObjectIdentifier }{{oid(2, 5, 29, 32, 0)}})), csr.ErrUnsupportedRequest},
		{"policyMappings are unsupported", withSPIFFE(t, ext(t, oid(2, 5, 29, 33), true,
			[]struct{ I, S asn1.ObjectIdentifier }{{oid(2, 5, 29, 32, 0), oidPrivate}})), csr.ErrUnsupportedRequest},
		{"policyConstraints are unsupported",
			withSPIFFE(t, ext(t, oid(2, 5, 29, 36), true, []byte{0x30, 3, 0x80, 1, 0})), csr.ErrUnsupportedRequest},
		{
			"inhibitAnyPolicy is unsupported",
			withSPIFFE(t, ext(t, oid(2, 5, 29, 54), true, 0)),
			csr.ErrUnsupportedRequest,
		},
		{"id-pkix-ocsp-nocheck is unsupported",
			withSPIFFE(t, ext(t, oid(1, 3, 6, 1, 5, 5, 7, 48, 1, 5), false, []byte{5, 0})), csr.ErrUnsupportedRequest},
		{"authorityInfoAccess is unsupported",
			withSPIFFE(t, ext(t, oid(1, 3, 6, 1, 5, 5, 7, 1, 1), false, accessDesc)), csr.ErrUnsupportedRequest},
		{"subjectInfoAccess is unsupported",
			withSPIFFE(t, ext(t, oid(1, 3, 6, 1, 5, 5, 7, 1, 11), false, accessDesc)), csr.ErrUnsupportedRequest},
		{"cRLDistributionPoints are unsupported", withSPIFFE(t, ext(t, oid(2, 5, 29, 31), false, crlDP)),
			csr.ErrUnsupportedRequest},
		{"authorityKeyIdentifier is unsupported", withSPIFFE(t, ext(t, oid(2, 5, 29, 35), false,
			[]byte{0x30, 4, 0x80, 2, 1, 2})), csr.ErrUnsupportedRequest},
		{"issuerAltName is unsupported", withSPIFFE(t, ext(t, oid(2, 5, 29, 18), false,
			[]asn1.RawValue{uriName("spiffe://cluster.local")})), csr.ErrUnsupportedRequest},
		{"subjectDirectoryAttributes are unsupported",
			withSPIFFE(t, ext(t, oid(2, 5, 29, 9), false, []byte{0x30, 0})), csr.ErrUnsupportedRequest},
		{"the TLS feature (OCSP must-staple) is unsupported",
			withSPIFFE(t, ext(t, oid(1, 3, 6, 1, 5, 5, 7, 1, 24), false, []int{5})), csr.ErrUnsupportedRequest},
		{"a Microsoft certificate template is unsupported", withSPIFFE(t, ext(t, oid(1, 3, 6, 1, 4, 1, 311, 21, 7),
			false, struct{ T asn1.ObjectIdentifier }{oidPrivate})), csr.ErrUnsupportedRequest},
		{"Microsoft application policies with codeSigning are unsupported",
			withSPIFFE(t, ext(t, oid(1, 3, 6, 1, 4, 1, 311, 21, 10), false,
				[]struct{ P asn1.ObjectIdentifier }{{oidCodeSigning}})), csr.ErrUnsupportedRequest},
		{"a Netscape certificate type is unsupported", withSPIFFE(t, ext(t, oid(2, 16, 840, 1, 113730, 1, 1), false,
			asn1.BitString{Bytes: []byte{0x04}, BitLength: 6})), csr.ErrUnsupportedRequest},
		{"a certificate transparency poison is unsupported",
			withSPIFFE(
				t,
				ext(t, oid(1, 3, 6, 1, 4, 1, 11129, 2, 4, 3), true, []byte{5, 0}),
			), csr.ErrUnsupportedRequest},
		{"an unknown critical extension is unsupported",
			withSPIFFE(t, ext(t, oidPrivate, true, []byte{5, 0})), csr.ErrUnsupportedRequest},
		{"an unknown non-critical extension is unsupported",
			withSPIFFE(t, ext(t, oidPrivate, false, []byte{5, 0})), csr.ErrUnsupportedRequest},
		{"an extension with a very long unknown OID is unsupported",
			withSPIFFE(t, ext(t, longOID(), false, []byte{5, 0})), csr.ErrUnsupportedRequest},
	}
}

func longOID() asn1.ObjectIdentifier {
	o := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1}
	for len(o) < 2000 {
		o = append(o, 99999)
	}
	return o
}

func structureCases(t *testing.T) []adversarialCase {
	spiffe := san(t, true, uriName(sleepID))
	good := rawCSR{exts: []pkix.Extension{spiffe}}.build(t)
	block, _ := pem.Decode(good)
	withAttrs := func(attrs ...asn1.RawValue) []byte { return rawCSR{attrs: attrs}.build(t) }
	printable := func(s string) []byte {
		return must(t, func() ([]byte, error) { return asn1.MarshalWithParams(s, "printable") })
	}
	extsDER := marshal(t, []pkix.Extension{spiffe})
	hidden := marshal(t, []pkix.Extension{keyUsage(t, kuKeyCertSign, kuCRLSign)})
	headers := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Headers: map[string]string{"X": "y"},
		Bytes: block.Bytes})
	return []adversarialCase{
		{"a version 2 CSR is invalid", rawCSR{version: 1, exts: []pkix.Extension{spiffe}}.build(t), csr.ErrInvalidCSR},
		{"a challengePassword attribute is unsupported", withAttrs(extRequest(t, spiffe),
			attribute(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}, printable("secret"))),
			csr.ErrUnsupportedRequest},
		{"an unstructuredName attribute is unsupported", withAttrs(extRequest(t, spiffe),
			attribute(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 2}, printable("admin"))),
			csr.ErrUnsupportedRequest},
		{"a second extensionRequest attribute is invalid",
			withAttrs(extRequest(t, spiffe), extRequest(t, extKeyUsage(t, oidClientAuth))), csr.ErrInvalidCSR},
		{"an extensionRequest hiding keyCertSign in a second value is invalid",
			withAttrs(attribute(t, oidExtensionRequest, extsDER, hidden)), csr.ErrInvalidCSR},
		{
			"an extensionRequest with no value is invalid",
			withAttrs(attribute(t, oidExtensionRequest)),
			csr.ErrInvalidCSR,
		},
		{"an attribute that is not an Attribute is invalid",
			withAttrs(extRequest(t, spiffe), asn1.RawValue{FullBytes: []byte{2, 1, 1}}), csr.ErrInvalidCSR},
		{"the committed Vault sign-verbatim attack CSR is unsupported", readTestdata(t, "vault-verbatim-attack.pem"),
			csr.ErrUnsupportedRequest},
		{"PEM headers are invalid", headers, csr.ErrInvalidCSR},
		{"text before the PEM block is invalid", append([]byte("admin\n"), good...), csr.ErrInvalidCSR},
		{"a committed bad self-signature is invalid", readTestdata(t, "bad-signature.pem"), csr.ErrInvalidCSR},
		{"a committed truncated CSR is invalid", readTestdata(t, "truncated.pem"), csr.ErrInvalidCSR},
		{"empty input is invalid", nil, csr.ErrInvalidCSR},
		{"a certificate instead of a CSR is invalid",
			[]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), csr.ErrInvalidCSR},
		{"two CSRs are invalid", append(append([]byte{}, good...), good...), csr.ErrInvalidCSR},
		{"trailing garbage is invalid", append(append([]byte{}, good...), "junk"...), csr.ErrInvalidCSR},
		{"an oversized input is invalid before parsing", []byte(strings.Repeat("A", csr.MaxPEMSize+1)),
			csr.ErrInvalidCSR},
	}
}

func signatureCases(t *testing.T) []adversarialCase {
	rsaKey := catest.RSAKey(t, 2048)
	spiffe := []pkix.Extension{san(t, true, uriName(sleepID))}
	signed := func(a sigAlg) []byte { return rawCSR{key: rsaKey, exts: spiffe, alg: &a}.build(t) }
	// withSPKI puts a key meshca refuses in a CSR; it is refused before the signature is checked.
	withSPKI := func(spki []byte, a sigAlg) []byte {
		a.garbage = true
		return rawCSR{spki: spki, exts: spiffe, alg: &a}.build(t)
	}
	huge := new(big.Int).SetBytes(must(t, func() ([]byte, error) {
		b := make([]byte, 16384/8)
		_, err := rand.Read(b)
		return b, err
	}))
	huge.SetBit(huge, 16383, 1).SetBit(huge, 0, 1)
	p521 := must(t, func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) })
	point := append([]byte{4}, make([]byte, 64)...)
	return []adversarialCase{
		{"a SHA-1 RSA signature is refused by key policy", signed(algSHA1WithRSA), csr.ErrKeyPolicy},
		{"an MD5 RSA signature is refused by key policy", signed(algMD5WithRSA), csr.ErrKeyPolicy},
		{"an MD2 RSA signature is refused by key policy", signed(algMD2WithRSA), csr.ErrKeyPolicy},
		{"an RSA-PSS signature over SHA-1 is refused by key policy", signed(algPSSWithSHA1), csr.ErrKeyPolicy},
		{"a SHA-1 ECDSA signature is refused by key policy",
			rawCSR{exts: spiffe, alg: &algECDSAWithSHA1}.build(t), csr.ErrKeyPolicy},
		{"a DSA signature is refused by key policy", withSPKI(dsaSPKI(t), algDSAWithSHA256), csr.ErrKeyPolicy},
		{"an unknown signature algorithm is refused by key policy", withSPKI(nil, algo(0, oidPrivate...)),
			csr.ErrKeyPolicy},
		{"an RSA signature algorithm over an ECDSA key is invalid", withSPKI(nil, algSHA256WithRSA), csr.ErrInvalidCSR},
		{"a bad self-signature is invalid", withSPKI(nil, algECDSAWithSHA256), csr.ErrInvalidCSR},
		{"an RSA public exponent of 3 is refused by key policy",
			rawCSR{key: rsaKeyWithExponent(t, 3), exts: spiffe}.build(t), csr.ErrKeyPolicy},
		{"an RSA public exponent of 65539 is refused by key policy",
			rawCSR{key: rsaKeyWithExponent(t, 65539), exts: spiffe}.build(t), csr.ErrKeyPolicy},
		{"an RSA public exponent of 1 is refused by key policy",
			withSPKI(rsaSPKI(t, rsaKey.(*rsa.PrivateKey).N, 1), algSHA256WithRSA), csr.ErrKeyPolicy},
		{"an even RSA public exponent is refused by key policy",
			withSPKI(rsaSPKI(t, rsaKey.(*rsa.PrivateKey).N, 65536), algSHA256WithRSA), csr.ErrKeyPolicy},
		{"a 16384-bit RSA key is refused by key policy before its signature is checked",
			withSPKI(rsaSPKI(t, huge, 65537), algSHA256WithRSA), csr.ErrKeyPolicy},
		{"a 1024-bit RSA key is refused by key policy",
			rawCSR{key: catest.RSAKey(t, 1024), exts: spiffe}.build(t), csr.ErrKeyPolicy},
		{"a committed P-224 key is refused by key policy", readTestdata(t, "p224.pem"), csr.ErrKeyPolicy},
		{"a P-521 key is refused by key policy", rawCSR{key: p521, exts: spiffe}.build(t), csr.ErrKeyPolicy},
		{"an X25519 key is refused by key policy",
			withSPKI(spkiDER(t, algo(0, 1, 3, 101, 110).id, make([]byte, 32)), algEd25519), csr.ErrKeyPolicy},
		{"an Ed448 key is refused by key policy",
			withSPKI(spkiDER(t, algo(0, 1, 3, 101, 113).id, make([]byte, 57)), algEd25519), csr.ErrKeyPolicy},
		{"a secp256k1 key, which Go cannot parse, is invalid", withSPKI(spkiDER(t, pkix.AlgorithmIdentifier{
			Algorithm:  asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1},
			Parameters: asn1.RawValue{FullBytes: marshal(t, asn1.ObjectIdentifier{1, 3, 132, 0, 10})}}, point),
			algECDSAWithSHA256), csr.ErrInvalidCSR},
	}
}

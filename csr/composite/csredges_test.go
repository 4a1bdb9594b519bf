package composite_test

import (
	"bytes"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"net"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/meshca/meshca/csr/composite"
)

var (
	oidExtensionRequest  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}
	oidChallengePassword = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}
	oidSubjectAltName    = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidPrivate           = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
)

// handCSR encodes a CertificationRequest (RFC 2986) with an empty subject, key's SubjectPublicKeyInfo and the
// given DER Attributes, self-signed by key: a real request with the attributes crypto/x509 would not write.
func handCSR(tb testing.TB, key *composite.PrivateKey, attrs ...[]byte) []byte {
	tb.Helper()
	spki, err := composite.MarshalPKIXPublicKey(key.PublicKey())
	if err != nil {
		tb.Fatal(err)
	}
	var info cryptobyte.Builder
	info.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {}) // the empty Name
		b.AddBytes(spki)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			for _, a := range attrs {
				b.AddBytes(a)
			}
		})
	})
	tbs := info.BytesOrPanic()
	sig, err := key.Sign(rand.Reader, tbs, nil)
	if err != nil {
		tb.Fatal(err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(key.Algorithm().OID()) })
		b.AddASN1BitString(sig)
	})
	return b.BytesOrPanic()
}

// attribute is an Attribute: SEQUENCE { type, SET OF value }.
func attribute(oid asn1.ObjectIdentifier, values ...[]byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			for _, v := range values {
				b.AddBytes(v)
			}
		})
	})
	return b.BytesOrPanic()
}

// extensionRequest is the PKCS #9 extensionRequest attribute holding exts (DER Extensions).
func extensionRequest(exts ...[]byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, e := range exts {
			b.AddBytes(e)
		}
	})
	return attribute(oidExtensionRequest, b.BytesOrPanic())
}

// extension is a non-critical Extension; a nil value leaves its extnValue out.
func extension(oid asn1.ObjectIdentifier, value []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if value != nil {
			b.AddASN1OctetString(value)
		}
	})
	return b.BytesOrPanic()
}

// subjectAltName is the extension with GeneralNames made of the given GeneralName elements.
func subjectAltName(names ...[]byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, n := range names {
			b.AddBytes(n)
		}
	})
	return extension(oidSubjectAltName, b.BytesOrPanic())
}

// The GeneralName forms ParseCertificateRequest reads (RFC 5280, Section 4.2.1.6).
func email(s string) []byte     { return generalName(1, []byte(s)) }
func dnsName(s string) []byte   { return generalName(2, []byte(s)) }
func uri(s string) []byte       { return generalName(6, []byte(s)) }
func ipAddress(b []byte) []byte { return generalName(7, b) }

func generalName(tag uint8, v []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.Tag(tag).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(v) })
	return b.BytesOrPanic()
}

// The extensionRequest is read whole, once, and a malformed one is refused: an error in it is not skipped, and
// nothing after it is left unread.
func TestParseCertificateRequestAttributes(t *testing.T) {
	key := newKey(t, composite.MLDSA65ECDSAP256SHA512())
	password := attribute(oidChallengePassword, []byte{0x13, 1, 'x'}) // PrintableString "x"
	san := subjectAltName(dnsName("sleep.default.svc"))
	private := extension(oidPrivate, []byte{5, 0})
	t.Run("a challengePassword and an extensionRequest of two extensions are read", func(t *testing.T) {
		req, err := composite.ParseCertificateRequest(handCSR(t, key, password, extensionRequest(san, private)))
		if err != nil {
			t.Fatal(err)
		}
		if len(req.Extensions) != 2 || !req.Extensions[1].Id.Equal(oidPrivate) || len(req.DNSNames) != 1 {
			t.Errorf("extensions %v, DNS names %v", req.Extensions, req.DNSNames)
		}
	})
	tests := []struct {
		name  string
		attrs [][]byte
	}{
		{"an extension without its value", [][]byte{extensionRequest(san, extension(oidPrivate, nil))}},
		{"one extension requested twice", [][]byte{extensionRequest(private, san, private)}},
		{"an empty subjectAltName", [][]byte{extensionRequest(subjectAltName())}},
		{"two extensionRequest attributes", [][]byte{extensionRequest(san), extensionRequest(private)}},
		{"a malformed attribute after the extensionRequest", [][]byte{extensionRequest(san),
			extension(oidChallengePassword, []byte{0x13, 1, 'x'})}}, // an OCTET STRING, not a SET
	}
	for _, tt := range tests {
		t.Run("a request with "+tt.name+" is refused", func(t *testing.T) {
			if _, err := composite.ParseCertificateRequest(handCSR(t, key, tt.attrs...)); !errors.Is(err,
				composite.ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			} else {
				t.Logf("refused: %v", err)
			}
		})
	}
}

// IP address SANs are 4 or 16 bytes; e-mail, DNS and URI SANs are IA5String, 7-bit bytes only.
func TestParseCertificateRequestSANs(t *testing.T) {
	key := newKey(t, composite.MLDSA65ECDSAP256SHA512())
	v6, malformed := net.ParseIP("fd00::1"), composite.ErrMalformed
	tests := []struct {
		name    string
		names   [][]byte
		wantErr error
		check   func(t *testing.T, ips []net.IP, dns []string)
	}{
		{"an IPv4 and an IPv6 address are read", [][]byte{ipAddress([]byte{10, 0, 0, 1}), ipAddress(v6)}, nil,
			func(t *testing.T, ips []net.IP, _ []string) {
				if len(ips) != 2 || !ips[0].Equal(net.IPv4(10, 0, 0, 1)) || !ips[1].Equal(v6) {
					t.Errorf("IP addresses %v", ips)
				}
			}},
		{"an IP address of 5 bytes is refused", [][]byte{ipAddress([]byte{10, 0, 0, 1, 0})}, malformed, nil},
		{"an IP address of 17 bytes is refused", [][]byte{ipAddress(append(bytes.Clone(v6), 0))}, malformed, nil},
		{"a DNS name with the byte 0x7f is read", [][]byte{dnsName("a\x7fb")}, nil,
			func(t *testing.T, _ []net.IP, dns []string) {
				if len(dns) != 1 || dns[0] != "a\x7fb" {
					t.Errorf("DNS names %q", dns)
				}
			}},
		{"a DNS name with the byte 0x80 is refused", [][]byte{dnsName("a\x80b")}, malformed, nil},
		{"a URI with the byte 0x80 is refused", [][]byte{uri("spiffe://a\x80b/x")}, malformed, nil},
		{"an e-mail address with the byte 0xff is refused", [][]byte{email("a@b\xff")}, malformed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der := handCSR(t, key, extensionRequest(subjectAltName(tt.names...)))
			req, err := composite.ParseCertificateRequest(der)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			t.Logf("result: %v", err)
			if tt.check != nil {
				tt.check(t, req.IPAddresses, req.DNSNames)
			}
		})
	}
}

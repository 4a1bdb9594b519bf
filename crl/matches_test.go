package crl_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"slices"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
)

// Extension identifiers dropped by withoutExtension.
var (
	oidSubjectKeyID   = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
)

// withoutExtension returns der, a certificate (extensions under tag [3]) or a CRL (tag [0]) signed with ECDSA
// and SHA-256, without the extension oid and signed again by key: crypto/x509 always writes a CA's subject key
// identifier and a CRL's authority key identifier, which other tools leave out.
func withoutExtension(t *testing.T, der []byte, tag int, oid asn1.ObjectIdentifier, key crypto.Signer) []byte {
	t.Helper()
	var outer struct {
		TBS asn1.RawValue
		Alg asn1.RawValue
		Sig asn1.BitString
	}
	var fields []asn1.RawValue
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(outer.TBS.FullBytes, &fields); err != nil {
		t.Fatal(err)
	}
	var tbs []byte
	for _, f := range fields {
		if f.Class == asn1.ClassContextSpecific && f.Tag == tag {
			var exts []asn1.RawValue
			if _, err := asn1.Unmarshal(f.Bytes, &exts); err != nil {
				t.Fatal(err)
			}
			exts = slices.DeleteFunc(exts, func(e asn1.RawValue) bool {
				var id asn1.ObjectIdentifier
				_, err := asn1.Unmarshal(e.Bytes, &id)
				return err == nil && id.Equal(oid)
			})
			f.FullBytes = mustMarshal(t, asn1.RawValue{Class: f.Class, Tag: tag, IsCompound: true,
				Bytes: mustMarshal(t, exts)})
		}
		tbs = append(tbs, f.FullBytes...)
	}
	outer.TBS.FullBytes = mustMarshal(t, asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: tbs})
	sum := sha256.Sum256(outer.TBS.FullBytes)
	sig, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	outer.Sig = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	return mustMarshal(t, outer)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMatchesKeyIdentifiers: a CRL is its CA's by name and signature; the key identifiers, when both carry
// one, must agree, and when either lacks one they do not decide.
func TestMatchesKeyIdentifiers(t *testing.T) {
	p := crltest.New(t, t.Name())
	now := p.Now
	parseCRL := func(der []byte) *x509.RevocationList {
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	interCRL := crltest.CRL(t, p.Inter, p.InterKey, 1, now.Add(-time.Minute), now.Add(time.Hour))
	// A root without a subject key identifier, and a CRL of it that names one all the same.
	noSKI, err := x509.ParseCertificate(withoutExtension(t, p.Root.Raw, 3, oidSubjectKeyID, p.RootKey))
	if err != nil || len(noSKI.SubjectKeyId) != 0 {
		t.Fatalf("a root without a subject key identifier: %v", err)
	}
	withSKI := *noSKI
	withSKI.SubjectKeyId = []byte{1, 2, 3, 4}
	// The intermediate's name on another key identifier, signed by its own key.
	otherID := *p.Inter
	otherID.SubjectKeyId = append([]byte{0xff}, p.Inter.SubjectKeyId[1:]...)
	// Another name for the intermediate's key.
	renamed := *p.Inter
	renamed.RawSubject = p.Root.RawSubject
	noAKI := withoutExtension(t, interCRL, 0, oidAuthorityKeyID, p.InterKey)
	if len(parseCRL(noAKI).AuthorityKeyId) != 0 {
		t.Fatal("the CRL without an authority key identifier still has one")
	}
	for _, tc := range []struct {
		name string
		list []byte
		ca   *x509.Certificate
		want bool
	}{
		{"a CRL with the CA's name, key identifier and signature matches", interCRL, p.Inter, true},
		{"a CRL without an authority key identifier matches by name and signature", noAKI, p.Inter, true},
		{"a CRL naming a key identifier matches a CA that has none",
			crltest.CRL(t, &withSKI, p.RootKey, 1, now.Add(-time.Minute), now.Add(time.Hour)), noSKI, true},
		{"a CRL naming another key identifier does not match, though the CA's key signed it",
			crltest.CRL(t, &otherID, p.InterKey, 1, now.Add(-time.Minute), now.Add(time.Hour)), p.Inter, false},
		{"a CRL under another name does not match, though the CA's key signed it",
			crltest.CRL(t, &renamed, p.InterKey, 1, now.Add(-time.Minute), now.Add(time.Hour)), p.Inter, false},
		{"a CRL of the root does not match the intermediate", crltest.CRL(t, p.Root, p.RootKey, 1,
			now.Add(-time.Minute), now.Add(time.Hour)), p.Inter, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := crl.Matches(parseCRL(tc.list), tc.ca); got != tc.want {
				t.Fatalf("Matches = %t, want %t", got, tc.want)
			}
		})
	}
}

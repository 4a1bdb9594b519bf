package csr_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshca/meshca/csr"
)

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParseID(t *testing.T) {
	td := csr.Identity{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "sleep"}
	tests := []struct {
		in   string
		want csr.Identity
		ok   bool
	}{
		{"spiffe://cluster.local/ns/default/sa/sleep", td, true},
		{"spiffe://td/ns/a-b/sa/c.d", csr.Identity{TrustDomain: "td", Namespace: "a-b", ServiceAccount: "c.d"}, true},
		{"spiffe://cluster.local/ns/a/b/sa/c", csr.Identity{}, false},
		{"spiffe://cluster.local/ns/default/sa/sleep/", csr.Identity{}, false},
		{"spiffe://cluster.local/ns//sa/sleep", csr.Identity{}, false},
		{"spiffe://Cluster.local/ns/default/sa/sleep", csr.Identity{}, false},
		{"spiffe://cluster.local:8443/ns/default/sa/sleep", csr.Identity{}, false},
		{"spiffe://cluster.local/ns/Default/sa/sleep", csr.Identity{}, false},
		{"spiffe://cluster.local/ns/default/sa/sl%65ep", csr.Identity{}, false},
		{"spiffe://cluster.local/sa/sleep/ns/default", csr.Identity{}, false},
		{"https://cluster.local/ns/default/sa/sleep", csr.Identity{}, false},
		{"spiffe://cluster.local/ns/default/sa/-sleep", csr.Identity{}, false},
		{"spiffe://cluster.local/ns/" + strings.Repeat("a", 64) + "/sa/x", csr.Identity{}, false},
	}
	for _, tt := range tests {
		got, err := csr.ParseID(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("ParseID(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, csr.ErrInvalidID) {
			t.Errorf("ParseID(%q) error %v does not wrap ErrInvalidID", tt.in, err)
		}
		if tt.ok && got.String() != tt.in {
			t.Errorf("round trip %q -> %q", tt.in, got.String())
		}
	}
}

// Independent statements of the policy, for the fuzz targets to check Parse against.
var (
	fuzzAllowedExtensions = []string{"2.5.29.17", "2.5.29.15", "2.5.29.37", "2.5.29.19", "2.5.29.14"}
	fuzzAllowedSigAlgs    = []x509.SignatureAlgorithm{x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA256,
		x509.ECDSAWithSHA384, x509.ECDSAWithSHA512, x509.PureEd25519}
)

// checkOutcome asserts what must hold for any input: a refusal wraps a sentinel and returns nothing; an
// acceptance has a verified signature made with a strong algorithm, a key the policy allows and names with
// one of KeyTypes, only allowed extensions, and only DNS, email, URI and IP SANs.
func checkOutcome(t *testing.T, r *csr.Request, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, csr.ErrInvalidCSR) && !errors.Is(err, csr.ErrKeyPolicy) {
			t.Fatalf("error %v wraps neither ErrInvalidCSR nor ErrKeyPolicy", err)
		}
		if r != nil {
			t.Fatalf("a Request was returned along with %v", err)
		}
		return
	}
	if err := r.CSR.CheckSignature(); err != nil {
		t.Fatalf("accepted a CSR whose signature does not verify: %v", err)
	}
	if !slices.Contains(fuzzAllowedSigAlgs, r.CSR.SignatureAlgorithm) {
		t.Fatalf("accepted a CSR signed with %v", r.CSR.SignatureAlgorithm)
	}
	if kt, err := csr.CheckKey(r.PublicKey); err != nil || kt != r.KeyType || !slices.Contains(csr.KeyTypes(), kt) {
		t.Fatalf("accepted key type %q: CheckKey says %q, %v", r.KeyType, kt, err)
	}
	for _, e := range r.CSR.Extensions {
		if !slices.Contains(fuzzAllowedExtensions, e.Id.String()) {
			t.Fatalf("accepted extension %s", e.Id)
		}
		if e.Id.String() != "2.5.29.17" {
			continue
		}
		var names []asn1.RawValue
		if _, err := asn1.Unmarshal(e.Value, &names); err != nil {
			t.Fatalf("accepted a subjectAltName that does not parse: %v", err)
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || !slices.Contains([]int{1, 2, 6, 7}, n.Tag) {
				t.Fatalf("accepted a GeneralName of class %d, tag %d", n.Class, n.Tag)
			}
		}
	}
}

func fuzzSeeds(f *testing.F) [][]byte {
	seeds := [][]byte{readTestdata(f, "ztunnel-openssl-p256.pem"), readTestdata(f, "vault-verbatim-attack.pem")}
	for _, name := range []string{"good-p256.pem", "p224.pem", "bad-signature.pem", "truncated.pem"} {
		seeds = append(seeds, readTestdata(f, name))
	}
	spiffe := san(f, true, uriName(sleepID))
	return append(seeds,
		rawCSR{exts: []pkix.Extension{spiffe, keyUsage(f, kuDigitalSignature), extKeyUsage(f, oidServerAuth)}}.build(f),
		rawCSR{exts: []pkix.Extension{san(f, true, uriName(sleepID), generalName(0, true, []byte{6, 1, 1}))}}.build(f),
		rawCSR{exts: []pkix.Extension{spiffe, keyUsage(f, kuKeyCertSign)}}.build(f),
		rawCSR{exts: []pkix.Extension{spiffe, ext(f, oidBasicConstraints, true, struct{ IsCA bool }{true})}}.build(f),
	)
}

// FuzzParse: no input may panic, and every outcome satisfies checkOutcome.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := csr.Parse(in)
		checkOutcome(t, r, err)
	})
}

// FuzzParseRaw is FuzzParse on DER, where mutations reach the ASN.1 structure instead of the base64 text.
func FuzzParseRaw(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		if b, _ := pem.Decode(s); b != nil {
			f.Add(b.Bytes)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := csr.ParseRaw(in)
		checkOutcome(t, r, err)
	})
}

// FuzzParseID: no input may panic; anything accepted round-trips exactly.
func FuzzParseID(f *testing.F) {
	f.Add("spiffe://cluster.local/ns/default/sa/sleep")
	f.Add("spiffe://cluster.local/ns/a/b/sa/c")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := csr.ParseID(s)
		if err == nil && id.String() != s {
			t.Fatalf("ParseID(%q) accepted but prints %q", s, id.String())
		}
	})
}

package csr_test

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	good, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/sleep")
	critical := pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{5, 0}}
	nonCritical := critical
	nonCritical.Critical = false
	withExt := func(e pkix.Extension) []byte {
		b, _ := catest.CSR(t, catest.CSROptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/sleep"}, Extensions: []pkix.Extension{e}})
		return b
	}
	rsa2048, _ := catest.CSR(t, catest.CSROptions{Key: catest.RSAKey(t, 2048)})
	rsa1024, _ := catest.CSR(t, catest.CSROptions{Key: catest.RSAKey(t, 1024)})
	ed, _ := catest.CSR(t, catest.CSROptions{Key: catest.Ed25519Key(t)})
	caCSR, _ := catest.CSR(t, catest.CSROptions{IsCA: true})
	tests := []struct {
		name    string
		in      []byte
		wantErr error
		keyType string
	}{
		{"a P-256 CSR parses", good, nil, "ECDSA-P256"},
		{"a committed P-256 CSR parses", readTestdata(t, "good-p256.pem"), nil, "ECDSA-P256"},
		{"an RSA-2048 CSR parses", rsa2048, nil, "RSA-2048"},
		{"an Ed25519 CSR parses", ed, nil, "Ed25519"},
		{"a CA request parses and is flagged", caCSR, nil, "ECDSA-P256"},
		{"an unknown non-critical extension is ignored", withExt(nonCritical), nil, "ECDSA-P256"},
		{"an unknown critical extension is refused", withExt(critical), csr.ErrInvalidCSR, ""},
		{"a P-224 key is refused", readTestdata(t, "p224.pem"), csr.ErrKeyPolicy, ""},
		{"a 1024-bit RSA key is refused", rsa1024, csr.ErrKeyPolicy, ""},
		{"a bad self-signature is refused", readTestdata(t, "bad-signature.pem"), csr.ErrInvalidCSR, ""},
		{"a truncated CSR is refused", readTestdata(t, "truncated.pem"), csr.ErrInvalidCSR, ""},
		{"empty input is refused", nil, csr.ErrInvalidCSR, ""},
		{"a certificate instead of a CSR is refused", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), csr.ErrInvalidCSR, ""},
		{"two CSRs are refused", append(append([]byte{}, good...), good...), csr.ErrInvalidCSR, ""},
		{"trailing garbage is refused", append(append([]byte{}, good...), "junk"...), csr.ErrInvalidCSR, ""},
		{"an oversized input is refused before parsing", []byte(strings.Repeat("A", csr.MaxPEMSize+1)), csr.ErrInvalidCSR, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := csr.Parse(tt.in)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Parse: %v, want %v", err, tt.wantErr)
			}
			if err == nil && r.KeyType != tt.keyType {
				t.Errorf("KeyType = %q, want %q", r.KeyType, tt.keyType)
			}
		})
	}
	if r, _ := csr.Parse(caCSR); !r.IsCA {
		t.Error("a CSR with basicConstraints cA=TRUE is not flagged IsCA")
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in   string
		want csr.Identity
		ok   bool
	}{
		{"spiffe://cluster.local/ns/default/sa/sleep", csr.Identity{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "sleep"}, true},
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

// FuzzParse: no input may panic, and anything accepted must satisfy the key policy and verify.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"good-p256.pem", "p224.pem", "bad-signature.pem", "truncated.pem"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := csr.Parse(in)
		if err != nil {
			if !errors.Is(err, csr.ErrInvalidCSR) && !errors.Is(err, csr.ErrKeyPolicy) {
				t.Fatalf("error %v wraps neither ErrInvalidCSR nor ErrKeyPolicy", err)
			}
			return
		}
		if err := r.CSR.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR whose signature does not verify: %v", err)
		}
		if _, err := csr.CheckKey(r.PublicKey); err != nil {
			t.Fatalf("accepted a key the policy refuses: %v", err)
		}
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

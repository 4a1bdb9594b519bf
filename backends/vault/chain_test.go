package vault

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/internal/testpki"
)

type testPKI struct {
	root, inter, leaf, otherRoot *x509.Certificate
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	now := time.Now()
	mk := func(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
		return testpki.Sign(t, tmpl, parent, pub, signer)
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ca := func(serial int64, cn string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	}
	rk, ik, lk, ok := key(), key(), key(), key()
	var p testPKI
	p.root = mk(ca(1, "root"), ca(1, "root"), rk.Public(), rk)
	p.otherRoot = mk(ca(2, "root"), ca(2, "root"), ok.Public(), ok) // same name, other key
	p.inter = mk(ca(3, "intermediate"), p.root, ik.Public(), rk)
	u, _ := url.Parse("spiffe://cluster.local/ns/default/sa/x")
	p.leaf = mk(&x509.Certificate{SerialNumber: big.NewInt(4), NotBefore: now.Add(-time.Minute),
		NotAfter: now.Add(time.Hour), URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		p.inter, lk.Public(), ik)
	return p
}

func TestBuildChain(t *testing.T) {
	p := newTestPKI(t)
	c := func(cs ...*x509.Certificate) []*x509.Certificate { return cs }
	tests := []struct {
		name       string
		candidates []*x509.Certificate
		anchors    []*x509.Certificate
		want       error
	}{
		{"Vault's ca_chain as documented: intermediate then root", c(p.inter, p.root), c(p.root), nil},
		{"root missing from Vault's answer", c(p.inter), c(p.root), nil},
		{"intermediate only as issuing_ca plus a duplicated chain", c(p.inter, p.inter, p.root, p.inter, p.root),
			c(p.root), nil},
		{"reversed order with an unrelated certificate", c(p.root, p.otherRoot, p.inter), c(p.root), nil},
		{"a same-named root with another key is not the anchor", c(p.inter, p.root), c(p.otherRoot),
			backends.ErrBadChain},
		{"no intermediate anywhere", c(p.root), c(p.root), backends.ErrBadChain},
		{"no anchor configured", c(p.inter, p.root), nil, backends.ErrBadChain},
		{"the leaf itself offered as anchor", c(p.inter), c(p.leaf), backends.ErrBadChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, err := buildChain(p.leaf, tt.candidates, tt.anchors, time.Now())
			if !errors.Is(err, tt.want) {
				t.Fatalf("buildChain: %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if len(chain) != 3 || !chain[0].Equal(p.leaf) || !chain[1].Equal(p.inter) || !chain[2].Equal(p.root) {
				t.Fatalf("chain %v, want leaf, intermediate, root", subjects(chain))
			}
		})
	}
	stale := time.Now().Add(48 * time.Hour)
	if _, err := buildChain(p.leaf, c(p.inter, p.root), c(p.root), stale); !errors.Is(err, backends.ErrBadChain) {
		t.Fatalf("buildChain after the CAs expired: %v, want ErrBadChain", err)
	}
}

func subjects(cs []*x509.Certificate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Subject.String())
	}
	return out
}

func pemOf(cs ...*x509.Certificate) string {
	var b strings.Builder
	for _, c := range cs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return b.String()
}

// Malformed fields of a Vault response, kept as files in testdata, are ErrBadChain, never a panic.
func TestParseIssuedMalformed(t *testing.T) {
	p := newTestPKI(t)
	files, err := filepath.Glob("testdata/*.pem")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(f)+" as certificate", func(t *testing.T) {
			_, _, err := parseIssued(map[string]any{"certificate": string(raw)})
			if !errors.Is(err, backends.ErrBadChain) {
				t.Fatalf("parseIssued: %v, want ErrBadChain", err)
			}
		})
		t.Run(filepath.Base(f)+" in ca_chain", func(t *testing.T) {
			_, _, err := parseIssued(map[string]any{"certificate": pemOf(p.leaf),
				"ca_chain": []any{pemOf(p.inter), string(raw)}})
			if !errors.Is(err, backends.ErrBadChain) {
				t.Fatalf("parseIssued: %v, want ErrBadChain", err)
			}
		})
	}
	if _, _, err := parseIssued(map[string]any{"certificate": 42}); !errors.Is(err, backends.ErrBadChain) {
		t.Fatalf("parseIssued with a number: %v, want ErrBadChain", err)
	}
}

// FuzzParseIssued feeds arbitrary certificate, issuing_ca and ca_chain fields through the response parser and
// the chain builder: no panic, and any chain returned is leaf first, ends with the anchor and has no repeats.
func FuzzParseIssued(f *testing.F) {
	p := newTestPKI(f)
	f.Add(pemOf(p.leaf), pemOf(p.inter), pemOf(p.inter, p.root))
	f.Add(pemOf(p.leaf, p.inter), "", pemOf(p.root))
	f.Add(pemOf(p.leaf), pemOf(p.inter), pemOf(p.inter, p.inter, p.root, p.root))
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "", "")
	if files, _ := filepath.Glob("testdata/*.pem"); len(files) > 0 {
		for _, name := range files {
			raw, _ := os.ReadFile(name)
			f.Add(pemOf(p.leaf), string(raw), pemOf(p.root))
		}
	}
	anchors := []*x509.Certificate{p.root}
	f.Fuzz(func(t *testing.T, cert, issuingCA, caChain string) {
		leaf, candidates, err := parseIssued(map[string]any{"certificate": cert, "issuing_ca": issuingCA,
			"ca_chain": []any{caChain}})
		if err != nil {
			if !errors.Is(err, backends.ErrBadChain) {
				t.Fatalf("parseIssued error %v is not ErrBadChain", err)
			}
			return
		}
		chain, err := buildChain(leaf, candidates, anchors, time.Now())
		if err != nil {
			if !errors.Is(err, backends.ErrBadChain) {
				t.Fatalf("buildChain error %v is not ErrBadChain", err)
			}
			return
		}
		if !chain[0].Equal(leaf) || !chain[len(chain)-1].Equal(p.root) {
			t.Fatalf("chain %v does not run from the leaf to the anchor", subjects(chain))
		}
		for i := range chain {
			for j := i + 1; j < len(chain); j++ {
				if chain[i].Equal(chain[j]) {
					t.Fatalf("chain %v repeats a certificate", subjects(chain))
				}
			}
		}
	})
}

// The signing fast path accepts only a leaf of the known, currently valid issuer, and returns the known chain.
func TestFastChain(t *testing.T) {
	p := newTestPKI(t)
	st := newCAState([]*x509.Certificate{p.inter, p.root}, []*x509.Certificate{p.root})
	chain, ok := st.fastChain(p.leaf, time.Now())
	if !ok || len(chain) != 3 || !chain[0].Equal(p.leaf) || !chain[2].Equal(p.root) {
		t.Fatalf("fastChain = %v, %v; want leaf, intermediate, root", subjects(chain), ok)
	}
	if _, ok := st.fastChain(p.inter, time.Now()); ok {
		t.Fatal("fastChain accepted a certificate the known issuer did not sign")
	}
	if _, ok := st.fastChain(p.leaf, time.Now().Add(48*time.Hour)); ok {
		t.Fatal("fastChain accepted a chain past its expiry")
	}
	other := newCAState([]*x509.Certificate{p.otherRoot}, []*x509.Certificate{p.otherRoot})
	if _, ok := other.fastChain(p.leaf, time.Now()); ok {
		t.Fatal("fastChain accepted a leaf of another issuer")
	}
}

package composite

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// chainPKI is a composite root, a composite intermediate under it and the templates of a leaf under that,
// all on real keys, for VerifyChain's tests; each field can be changed before build.
type chainPKI struct {
	rootKey, interKey       *PrivateKey
	rootTmpl, interTmpl     *x509.Certificate
	leafTmpl                *x509.Certificate
	interPub, leafPub       crypto.PublicKey                            // interPub: default interKey's
	signLeaf                func(tmpl, parent *x509.Certificate) []byte // default: the intermediate signs
	interParent, leafParent func(*x509.Certificate) *x509.Certificate   // edit the parent a certificate names
}

func newChainPKI(t testing.TB) *chainPKI {
	t.Helper()
	now := time.Now()
	ca := func(cn string, pathLen int) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, MaxPathLen: pathLen, MaxPathLenZero: pathLen == 0}
	}
	id, _ := url.Parse("spiffe://cluster.local/ns/default/sa/a")
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &chainPKI{rootKey: chainKey(t), interKey: chainKey(t), rootTmpl: ca("root", 1),
		interTmpl: ca("intermediate", 0), leafPub: &ec.PublicKey,
		leafTmpl: &x509.Certificate{SerialNumber: big.NewInt(3), NotBefore: now.Add(-time.Minute),
			NotAfter: now.Add(time.Hour), URIs: []*url.URL{id}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		interParent: func(c *x509.Certificate) *x509.Certificate { return c },
		leafParent:  func(c *x509.Certificate) *x509.Certificate { return c }}
	return p
}

func chainKey(t testing.TB) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(MLDSA65ECDSAP256SHA512(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mustCreate issues tmpl under parent with key (CreateCertificate) and parses the result.
func mustCreate(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key *PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p *chainPKI) build(t testing.TB) (chain []*x509.Certificate, root *x509.Certificate) {
	t.Helper()
	mk := func(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key *PrivateKey) *x509.Certificate {
		return mustCreate(t, tmpl, parent, pub, key)
	}
	root = mk(p.rootTmpl, p.rootTmpl, p.rootKey.PublicKey(), p.rootKey)
	var interPub crypto.PublicKey = p.interKey.PublicKey()
	if p.interPub != nil {
		interPub = p.interPub
	}
	inter := mk(p.interTmpl, p.interParent(root), interPub, p.rootKey)
	var leaf *x509.Certificate
	if p.signLeaf != nil {
		var err error
		if leaf, err = x509.ParseCertificate(p.signLeaf(p.leafTmpl, p.leafParent(inter))); err != nil {
			t.Fatal(err)
		}
	} else {
		leaf = mk(p.leafTmpl, p.leafParent(inter), p.leafPub, p.interKey)
	}
	return []*x509.Certificate{leaf, inter, root}, root
}

// renamed is parent under another subject name, with the same key.
func renamed(c *x509.Certificate) *x509.Certificate {
	d := *c
	d.RawSubject, d.Subject = nil, pkix.Name{CommonName: "someone else"}
	return &d
}

// tamperedChains each break exactly one rule of VerifyChain; says is what the error must name, the position of
// the certificate at fault in most cases, so that an operator reading it knows which certificate to look at.
var tamperedChains = []struct {
	name, rule, says string
	tamper           func(t *testing.T, p *chainPKI, roots *[]*x509.Certificate)
}{
	{"a chain ending in a root that is not trusted", "trust anchor", `"CN=root", which is not one of the 1 trusted`,
		func(t *testing.T, _ *chainPKI, roots *[]*x509.Certificate) {
			other, _ := newChainPKI(t).build(t)
			*roots = other[2:]
		}},
	{"a leaf that expired", "validity", "certificate 0 is valid from",
		func(_ *testing.T, p *chainPKI, _ *[]*x509.Certificate) {
			p.leafTmpl.NotAfter = time.Now().Add(-time.Second)
		}},
	{"an intermediate that is not valid yet", "validity", "certificate 1 is valid from",
		func(_ *testing.T, p *chainPKI, _ *[]*x509.Certificate) {
			p.interTmpl.NotBefore = time.Now().Add(time.Hour)
		}},
	{"a leaf naming another issuer, signed by the intermediate's key", "issuer name",
		`certificate 0 names issuer "CN=someone else", certificate 1 is "CN=intermediate"`,
		func(_ *testing.T, p *chainPKI, _ *[]*x509.Certificate) { p.leafParent = renamed }},
	{"an intermediate naming another issuer, signed by the root's key", "issuer name",
		`certificate 1 names issuer "CN=someone else", certificate 2 is "CN=root"`,
		func(_ *testing.T, p *chainPKI, _ *[]*x509.Certificate) { p.interParent = renamed }},
	{"a leaf signed by another composite key under the intermediate's name", "signature", "certificate 0: ",
		func(t *testing.T, p *chainPKI, _ *[]*x509.Certificate) {
			other := chainKey(t)
			p.signLeaf = func(tmpl, parent *x509.Certificate) []byte {
				par := *parent
				par.PublicKey, par.RawSubjectPublicKeyInfo = nil, nil // skip CreateCertificate's own key check
				der, err := CreateCertificate(rand.Reader, tmpl, &par, p.leafPub, other)
				if err != nil {
					t.Fatal(err)
				}
				return der
			}
		}},
	{"a leaf whose signature has one flipped bit", "signature", "certificate 0: ",
		func(t *testing.T, p *chainPKI, _ *[]*x509.Certificate) {
			p.signLeaf = func(tmpl, parent *x509.Certificate) []byte {
				der, err := CreateCertificate(rand.Reader, tmpl, parent, p.leafPub, p.interKey)
				if err != nil {
					t.Fatal(err)
				}
				der[len(der)-40] ^= 1 // inside the ECDSA part of the signature BIT STRING
				return der
			}
		}},
	{"an intermediate with a classical ECDSA key, which signs the leaf", "signature", "key of certificate 1: ",
		func(t *testing.T, p *chainPKI, _ *[]*x509.Certificate) {
			ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			p.interPub = &ec.PublicKey
			p.signLeaf = func(tmpl, parent *x509.Certificate) []byte {
				der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, p.leafPub, ec)
				if err != nil {
					t.Fatal(err)
				}
				return der
			}
		}},
	{"an intermediate that is not a CA", "CA", "certificate 1 signs certificate 0 but is not a CA",
		func(_ *testing.T, p *chainPKI, _ *[]*x509.Certificate) {
			p.interTmpl.IsCA, p.interTmpl.MaxPathLen, p.interTmpl.MaxPathLenZero = false, -1, false
		}},
	{"an intermediate without keyCertSign", "CA", "certificate 1 signs certificate 0 but its keyUsage lacks",
		func(_ *testing.T, p *chainPKI, _ *[]*x509.Certificate) {
			p.interTmpl.KeyUsage = x509.KeyUsageDigitalSignature
		}},
	{"a root with pathLenConstraint 0 above an intermediate", "path length",
		"certificate 2 allows 0 CAs below it (pathLenConstraint), the chain has 1",
		func(_ *testing.T, p *chainPKI, _ *[]*x509.Certificate) {
			p.rootTmpl.MaxPathLen, p.rootTmpl.MaxPathLenZero = 0, true
		}},
	{"a leaf with a critical extension nobody processes", "critical extensions", "certificate 0 has critical",
		func(_ *testing.T, p *chainPKI, _ *[]*x509.Certificate) {
			p.leafTmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1},
				Critical: true, Value: []byte{0x05, 0x00}}}
		}},
	{"an intermediate with name constraints", "name constraints", "certificate 1 carries name constraints",
		func(_ *testing.T, p *chainPKI, _ *[]*x509.Certificate) {
			p.interTmpl.PermittedURIDomains = []string{"cluster.local"}
		}},
}

// TestVerifyChainRefusesTamperedChains: every tampered chain is refused with ErrInvalidChain, and with its rule
// removed VerifyChain accepts it, so each case tests its own rule and deleting a rule fails the test.
func TestVerifyChainRefusesTamperedChains(t *testing.T) {
	for _, tt := range tamperedChains {
		t.Run(tt.name, func(t *testing.T) {
			p := newChainPKI(t)
			var roots []*x509.Certificate
			tt.tamper(t, p, &roots)
			chain, root := p.build(t)
			if roots == nil {
				roots = []*x509.Certificate{root}
			}
			assertRefusedByRule(t, chain, roots, tt.rule, tt.says)
		})
	}
}

// assertRefusedByRule checks that VerifyChain refuses chain with ErrInvalidChain in an error that names rule and
// says says, and that without rule it accepts chain.
func assertRefusedByRule(t *testing.T, chain, roots []*x509.Certificate, rule, says string) {
	t.Helper()
	err := VerifyChain(chain, roots, time.Now())
	if !errors.Is(err, ErrInvalidChain) {
		t.Fatalf("VerifyChain = %v, want ErrInvalidChain", err)
	}
	t.Logf("refused: %v", err)
	// The message is for the operator: the rule and, where one is at fault, the certificate's position.
	if want := ": " + rule + ": "; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), says) {
		t.Errorf("the error does not name the rule %q or say %q", rule, says)
	}
	without := slices.DeleteFunc(slices.Clone(chainRules), func(r chainRule) bool { return r.name == rule })
	if len(without) != len(chainRules)-1 {
		t.Fatalf("no rule named %q", rule)
	}
	if err := verifyChain(without, chain, roots, time.Now()); err != nil {
		t.Fatalf("without the %q rule the chain is still refused, so this case does not test that rule: %v", rule, err)
	}
}

func TestVerifyChainAcceptsCompositeChains(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, p *chainPKI)
	}{
		{"an ECDSA leaf under a composite intermediate and root", nil},
		{"a composite leaf", func(t *testing.T, p *chainPKI) { p.leafPub = chainKey(t).PublicKey() }},
		{"a root without pathLenConstraint", func(_ *testing.T, p *chainPKI) {
			p.rootTmpl.MaxPathLen, p.rootTmpl.MaxPathLenZero = -1, false
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newChainPKI(t)
			if tt.edit != nil {
				tt.edit(t, p)
			}
			chain, root := p.build(t)
			if err := VerifyChain(chain, []*x509.Certificate{root}, time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := VerifyChain(chain[:2], []*x509.Certificate{chain[1]}, time.Now()); err != nil {
				t.Fatalf("a chain ending in a trusted intermediate: %v", err)
			}
		})
	}
}

func TestVerifyChainRefusesMalformedChains(t *testing.T) {
	chain, root := newChainPKI(t).build(t)
	roots := []*x509.Certificate{root}
	for name, c := range map[string][]*x509.Certificate{
		"no chain": nil, "the leaf alone": chain[:1], "a nil issuer": {chain[0], nil},
		"nine certificates": append(slices.Repeat(chain[:1], 8), root),
	} {
		t.Run(name, func(t *testing.T) {
			if err := VerifyChain(c, roots, time.Now()); !errors.Is(err, ErrInvalidChain) {
				t.Fatalf("got %v, want ErrInvalidChain", err)
			}
		})
	}
}

// FuzzVerifyChain: VerifyChain never panics on a leaf of arbitrary DER under a real composite chain, and accepts
// one only if its signed part is the original leaf's (a composite signature may be re-encoded, draft Section
// 10.2, but nothing it covers may change).
func FuzzVerifyChain(f *testing.F) {
	chain, root := newChainPKI(f).build(f)
	f.Add(chain[0].Raw)
	f.Add(chain[1].Raw)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		fuzzed := []*x509.Certificate{leaf, chain[1], chain[2]}
		if VerifyChain(fuzzed, []*x509.Certificate{root}, time.Now()) == nil &&
			!slices.Equal(leaf.RawTBSCertificate, chain[0].RawTBSCertificate) {
			t.Fatal("a leaf whose signed part was changed verifies")
		}
	})
}

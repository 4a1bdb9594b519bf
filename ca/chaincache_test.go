package ca

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/meshca/meshca/internal/testpki"
)

// cacheCA is a root and an issuing CA under it, edited by constrain.
type cacheCA struct {
	root, inter *x509.Certificate
	key         crypto.Signer
}

var cacheSerial int64

func newCacheCA(t *testing.T, constrain func(*x509.Certificate)) cacheCA {
	t.Helper()
	now := time.Now()
	tmpl := func(cn string) *x509.Certificate {
		cacheSerial++
		return &x509.Certificate{SerialNumber: big.NewInt(cacheSerial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	rootKey, interKey := testpki.Key(t), testpki.Key(t)
	rt := tmpl("chain cache test root")
	root := testpki.Sign(t, rt, rt, rootKey.Public(), rootKey)
	it := tmpl("chain cache test issuing CA")
	if constrain != nil {
		constrain(it)
	}
	return cacheCA{root: root, inter: testpki.Sign(t, it, root, interKey.Public(), rootKey), key: interKey}
}

// leaf signs a leaf under c with the given SANs.
func (c cacheCA) leaf(t *testing.T, san func(*x509.Certificate)) []*x509.Certificate {
	t.Helper()
	now := time.Now()
	cacheSerial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(cacheSerial), NotBefore: now.Add(-time.Minute),
		NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	san(tmpl)
	k := testpki.Key(t)
	return []*x509.Certificate{testpki.Sign(t, tmpl, c.inter, k.Public(), c.key), c.inter, c.root}
}

// TestEveryKindOfNameConstraintTakesTheFullPath: a chain whose CA carries any one kind of name constraint is
// never served from the cache, so a later leaf that breaks the constraint is refused even though the chain
// verified before (and even when the backend says it checked the leaf's signature).
func TestEveryKindOfNameConstraintTakesTheFullPath(t *testing.T) {
	spiffe := func(td string) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.URIs = []*url.URL{{Scheme: "spiffe", Host: td, Path: "/ns/a/sa/b"}} }
	}
	dns := func(n string) func(*x509.Certificate) { return func(c *x509.Certificate) { c.DNSNames = []string{n} } }
	ip := func(s string) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.ParseIP(s)} }
	}
	email := func(s string) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.EmailAddresses = []string{s} }
	}
	none := func(*x509.Certificate) {}
	_, tenNet, _ := net.ParseCIDR("10.0.0.0/8")
	tests := []struct {
		name          string
		constrain     func(*x509.Certificate)
		allowed, bans func(*x509.Certificate)
	}{
		{"permitted DNS domains", func(c *x509.Certificate) { c.PermittedDNSDomains = []string{"svc"} },
			dns("a.svc"), dns("a.example.com")},
		{"excluded DNS domains", func(c *x509.Certificate) { c.ExcludedDNSDomains = []string{"svc"} },
			none, dns("a.svc")},
		{"permitted IP ranges", func(c *x509.Certificate) { c.PermittedIPRanges = []*net.IPNet{tenNet} },
			ip("10.1.2.3"), ip("192.168.1.1")},
		{"excluded IP ranges", func(c *x509.Certificate) { c.ExcludedIPRanges = []*net.IPNet{tenNet} },
			none, ip("10.1.2.3")},
		{"permitted email addresses", func(c *x509.Certificate) { c.PermittedEmailAddresses = []string{"mesh.io"} },
			email("a@mesh.io"), email("a@example.com")},
		{"excluded email addresses", func(c *x509.Certificate) { c.ExcludedEmailAddresses = []string{"mesh.io"} },
			none, email("a@mesh.io")},
		{"permitted URI domains", func(c *x509.Certificate) { c.PermittedURIDomains = []string{"cluster.local"} },
			spiffe("cluster.local"), spiffe("evil.example")},
		{"excluded URI domains", func(c *x509.Certificate) { c.ExcludedURIDomains = []string{"evil.example"} },
			spiffe("cluster.local"), spiffe("evil.example")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCacheCA(t, tt.constrain)
			roots := []*x509.Certificate{c.root}
			var cache chainCache
			for range 2 { // the second time, an unconstrained chain would come from the cache
				if err := cache.verify(c.leaf(t, tt.allowed), roots, time.Now(), true); err != nil {
					t.Fatalf("a leaf the constraint allows: %v", err)
				}
			}
			if err := cache.verify(c.leaf(t, tt.bans), roots, time.Now(), true); err == nil {
				t.Fatal("a leaf that breaks the CA's name constraint verified: want the full path to refuse it")
			}
			if len(cache.valid) != 0 {
				t.Fatalf("%d chains cached; want a constrained chain never cached", len(cache.valid))
			}
		})
	}
}

// TestChainCacheIsBounded: distinct chains are all remembered up to maxCachedChains, and the cache never holds
// more.
func TestChainCacheIsBounded(t *testing.T) {
	var cache chainCache
	spiffe := func(c *x509.Certificate) {
		c.URIs = []*url.URL{{Scheme: "spiffe", Host: "cluster.local", Path: "/ns/a/sa/b"}}
	}
	for n := 1; n <= maxCachedChains+1; n++ {
		c := newCacheCA(t, nil)
		if err := cache.verify(c.leaf(t, spiffe), []*x509.Certificate{c.root}, time.Now(), true); err != nil {
			t.Fatal(err)
		}
		if want := min(n, maxCachedChains); n <= maxCachedChains && len(cache.valid) != want {
			t.Fatalf("after %d distinct chains, %d cached; want %d", n, len(cache.valid), want)
		}
		if len(cache.valid) > maxCachedChains {
			t.Fatalf("after %d distinct chains, %d cached; want at most %d", n, len(cache.valid), maxCachedChains)
		}
	}
}

package composite

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// longChain builds a valid chain of n certificates (n >= 2), leaf first: a composite leaf under n-2 composite
// intermediates without pathLenConstraint under a composite root.
func longChain(t *testing.T, n int) (chain []*x509.Certificate, root *x509.Certificate) {
	t.Helper()
	now := time.Now()
	tmpl := func(cn string, serial int, ca bool) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(int64(serial)), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: ca, BasicConstraintsValid: ca,
			KeyUsage: x509.KeyUsageCertSign, MaxPathLen: -1}
	}
	parentKey := chainKey(t)
	rootTmpl := tmpl("root", 1, true)
	parent := mustCreate(t, rootTmpl, rootTmpl, parentKey.PublicKey(), parentKey)
	chain = []*x509.Certificate{parent}
	for i := range n - 2 {
		key := chainKey(t)
		parent = mustCreate(t, tmpl(fmt.Sprintf("intermediate %d", i+1), i+2, true), parent, key.PublicKey(), parentKey)
		chain, parentKey = append([]*x509.Certificate{parent}, chain...), key
	}
	leaf := tmpl("leaf", n, false)
	leaf.KeyUsage = x509.KeyUsageDigitalSignature
	chain = append([]*x509.Certificate{mustCreate(t, leaf, parent, chainKey(t).PublicKey(), parentKey)}, chain...)
	return chain, chain[n-1]
}

// VerifyChain reads chains of up to maxChainLength (8) certificates: a valid chain of 8 verifies, and one of 9
// that every rule accepts is refused by the length bound alone.
func TestVerifyChainLengthBound(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		wantErr error
	}{
		{"a leaf under six intermediates and a root is accepted", maxChainLength, nil},
		{"a leaf under seven intermediates and a root is refused", maxChainLength + 1, ErrInvalidChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, root := longChain(t, tt.n)
			roots := []*x509.Certificate{root}
			for _, r := range chainRules {
				if err := r.check(chain, roots, time.Now()); err != nil {
					t.Fatalf("the %s rule refuses the chain, which must be valid but for its length: %v", r.name, err)
				}
			}
			if err := VerifyChain(chain, roots, time.Now()); !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifyChain of %d certificates = %v, want %v", len(chain), err, tt.wantErr)
			}
		})
	}
}

// Every kind of name constraint on a composite CA is refused, each alone: the rule counts all eight lists.
func TestVerifyChainRefusesEveryKindOfNameConstraint(t *testing.T) {
	_, ipNet, err := net.ParseCIDR("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		constrain func(c *x509.Certificate)
	}{
		{"permitted DNS domains", func(c *x509.Certificate) { c.PermittedDNSDomains = []string{"cluster.local"} }},
		{"excluded DNS domains", func(c *x509.Certificate) { c.ExcludedDNSDomains = []string{"example.com"} }},
		{"permitted IP ranges", func(c *x509.Certificate) { c.PermittedIPRanges = []*net.IPNet{ipNet} }},
		{"excluded IP ranges", func(c *x509.Certificate) { c.ExcludedIPRanges = []*net.IPNet{ipNet} }},
		{"permitted e-mail addresses", func(c *x509.Certificate) { c.PermittedEmailAddresses = []string{"a.example"} }},
		{"excluded e-mail addresses", func(c *x509.Certificate) { c.ExcludedEmailAddresses = []string{"b.example"} }},
		{"permitted URI domains", func(c *x509.Certificate) { c.PermittedURIDomains = []string{"cluster.local"} }},
		{"excluded URI domains", func(c *x509.Certificate) { c.ExcludedURIDomains = []string{"example.com"} }},
	}
	for _, tt := range tests {
		t.Run("an intermediate with only "+tt.name+" is refused", func(t *testing.T) {
			p := newChainPKI(t)
			tt.constrain(p.interTmpl)
			chain, root := p.build(t)
			assertRefusedByRule(t, chain, []*x509.Certificate{root}, "name constraints",
				"certificate 1 carries name constraints")
		})
	}
}

// bounded keeps names of up to 160 bytes whole and cuts longer ones to 160 bytes and "...".
func TestBounded(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"an empty name stays empty", "", ""},
		{"a name of 160 bytes stays whole", strings.Repeat("a", 160), strings.Repeat("a", 160)},
		{"a name of 161 bytes is cut to 160", strings.Repeat("a", 160) + "b", strings.Repeat("a", 160) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bounded(tt.in); got != tt.want {
				t.Errorf("bounded(%d bytes) = %d bytes ending %q, want %d bytes", len(tt.in), len(got),
					got[max(0, len(got)-4):], len(tt.want))
			}
		})
	}
}

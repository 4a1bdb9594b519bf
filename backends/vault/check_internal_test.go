package vault

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/internal/testpki"
)

// The tests in this file check, without a Vault server, what the backend refuses before sending and what it
// accepts of an answer: real certificates stand in for Vault's, made by a root and an intermediate of their own.

const checkID = "spiffe://cluster.local/ns/default/sa/web"

type signPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
	leafKey           crypto.Signer
	now               time.Time
}

func newSignPKI(t *testing.T) *signPKI { return newSignPKIWith(t, nil) }

// newSignPKIWith makes the PKI with rootEdit applied to the root's template.
func newSignPKIWith(t *testing.T, rootEdit func(*x509.Certificate)) *signPKI {
	t.Helper()
	p := &signPKI{rootKey: testpki.Key(t), interKey: testpki.Key(t), leafKey: testpki.Key(t), now: time.Now()}
	ca := func(cn string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: p.now.Add(-time.Hour),
			NotAfter: p.now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	}
	rootTmpl := ca("root")
	if rootEdit != nil {
		rootEdit(rootTmpl)
	}
	p.root = testpki.Sign(t, rootTmpl, nil, p.rootKey.Public(), p.rootKey)
	p.inter = testpki.Sign(t, ca("intermediate"), p.root, p.interKey.Public(), p.rootKey)
	return p
}

// leaf returns the workload certificate Vault should issue for request(), changed by edit.
func (p *signPKI) leaf(t *testing.T, edit func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	tmpl := testpki.WorkloadTemplate(t, checkID, p.now)
	if edit != nil {
		edit(tmpl)
	}
	return testpki.Sign(t, tmpl, p.inter, p.leafKey.Public(), p.interKey)
}

// request is a sign request for checkID whose CSR asks for exactly its SANs, changed by edit.
func (p *signPKI) request(t *testing.T, edit func(*backends.SignRequest)) *backends.SignRequest {
	t.Helper()
	u, _ := url.Parse(checkID)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, p.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	r := &backends.SignRequest{CSR: c, PublicKey: p.leafKey.Public(), URIs: []*url.URL{u}, TTL: time.Hour}
	if edit != nil {
		edit(r)
	}
	return r
}

// TestCheckRequestRefusesBeforeSending: what Vault must not be asked to sign is refused as ErrRefused.
func TestCheckRequestRefusesBeforeSending(t *testing.T) {
	p := newSignPKI(t)
	uri := func(s string) []*url.URL { u, _ := url.Parse(s); return []*url.URL{u} }
	tests := []struct {
		name     string
		mode     string
		edit     func(*backends.SignRequest)
		refused  bool
		nilInput bool
	}{
		{"the request for one SPIFFE ID is sent", ModeSign, nil, false, false},
		{"no request is refused", ModeSign, nil, true, true},
		{"a request without CSR is refused", ModeSign, func(r *backends.SignRequest) { r.CSR = nil }, true, false},
		{"a key other than the CSR's is refused", ModeSign,
			func(r *backends.SignRequest) { r.PublicKey = testpki.Key(t).Public() }, true, false},
		{"a TTL under a second is refused", ModeSign,
			func(r *backends.SignRequest) { r.TTL = time.Second - time.Nanosecond }, true, false},
		{"a TTL of exactly a second is sent", ModeSign, func(r *backends.SignRequest) { r.TTL = time.Second },
			false, false},
		{"a request without SAN is refused", ModeSign, func(r *backends.SignRequest) { r.URIs = nil }, true, false},
		{"a DNS SAN alone is sent", ModeSign,
			func(r *backends.SignRequest) { r.URIs, r.DNSNames = nil, []string{"web.default.svc"} }, false, false},
		{"an IP SAN alone is sent", ModeSign,
			func(r *backends.SignRequest) { r.URIs, r.IPAddresses = nil, []net.IP{net.IPv4(10, 0, 0, 1)} },
			false, false},
		{"a URI SAN that is not a workload's SPIFFE ID is refused", ModeSign,
			func(r *backends.SignRequest) { r.URIs = uri("spiffe://cluster.local/ns/a/b/sa/c") }, true, false},
		{"an empty DNS SAN is refused", ModeSign, func(r *backends.SignRequest) { r.DNSNames = []string{""} },
			true, false},
		{"a DNS SAN with a comma is refused", ModeSign,
			func(r *backends.SignRequest) { r.DNSNames = []string{"a.example,b.example"} }, true, false},
		{"a DNS SAN with a space is refused", ModeSign,
			func(r *backends.SignRequest) { r.DNSNames = []string{"a.example b.example"} }, true, false},
		{"a common name with a comma is refused", ModeSign,
			func(r *backends.SignRequest) { r.Subject.CommonName = "a,b" }, true, false},
		{"a common name without comma is sent", ModeSign,
			func(r *backends.SignRequest) { r.Subject.CommonName = "web" }, false, false},
		{"sign-verbatim sends a CSR that asks for exactly the SANs", ModeSignVerbatim, nil, false, false},
		{"sign-verbatim refuses a CSR whose SANs differ", ModeSignVerbatim,
			func(r *backends.SignRequest) { r.URIs = uri("spiffe://cluster.local/ns/default/sa/db") }, true, false},
		{"mode sign sends a CSR whose SANs differ (the role takes the request's)", ModeSign,
			func(r *backends.SignRequest) { r.URIs = uri("spiffe://cluster.local/ns/default/sa/db") }, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Backend{cfg: Config{Mode: tt.mode}}
			req := p.request(t, tt.edit)
			if tt.nilInput {
				req = nil
			}
			err := b.checkRequest(req)
			if (err != nil) != tt.refused || (err != nil && !errors.Is(err, backends.ErrRefused)) {
				t.Fatalf("checkRequest: %v, want refused %v (ErrRefused)", err, tt.refused)
			}
		})
	}
}

// TestParseSignedChecksVaultsAnswer: the chain and the leaf Vault returns, on the fast path (the mount's known
// issuer) and the full one.
func TestParseSignedChecksVaultsAnswer(t *testing.T) {
	p := newSignPKI(t)
	other := newSignPKI(t)
	data := func(leaf *x509.Certificate, extra map[string]any) *api.Secret {
		d := map[string]any{"certificate": pemOf(leaf)}
		for k, v := range extra {
			d[k] = v
		}
		return &api.Secret{Data: d}
	}
	fast := func() *caState { return newCAState([]*x509.Certificate{p.inter, p.root}, []*x509.Certificate{p.root}) }
	slow := func() *caState { st := fast(); st.fast = false; return st }
	tests := []struct {
		name string
		sec  *api.Secret
		ca   *caState
		mode string
		want error
	}{
		{"the requested leaf of the known issuer is accepted", data(p.leaf(t, nil), nil), fast(), ModeSign, nil},
		{"the requested leaf is accepted on the full path, with the chain meshca knows", data(p.leaf(t, nil), nil),
			slow(), ModeSign, nil},
		{"a leaf dated ahead of meshca's clock is verified at its notBefore", data(p.leaf(t, func(c *x509.Certificate) {
			c.NotBefore = p.now.Add(time.Minute)
		}), nil), fast(), ModeSign, nil},
		{"no answer is a bad chain", nil, fast(), ModeSign, backends.ErrBadChain},
		{"an answer without data is a bad chain", &api.Secret{}, fast(), ModeSign, backends.ErrBadChain},
		{"an answer without certificate is a bad chain", &api.Secret{Data: map[string]any{}}, fast(), ModeSign,
			backends.ErrBadChain},
		{"a leaf of another CA is a bad chain",
			data(other.leaf(t, nil), map[string]any{"issuing_ca": pemOf(other.inter)}), fast(), ModeSign,
			backends.ErrBadChain},
		{"a malformed ca_chain on the full path is a bad chain",
			data(p.leaf(t, nil), map[string]any{"ca_chain": []any{"junk"}}), slow(), ModeSign, backends.ErrBadChain},
		{"a leaf for another identity is refused", data(p.leaf(t, func(c *x509.Certificate) {
			c.URIs[0], _ = url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
		}), nil), fast(), ModeSign, backends.ErrBadChain},
		{"a leaf for another identity from sign-verbatim is refused", data(p.leaf(t, func(c *x509.Certificate) {
			c.URIs[0], _ = url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
		}), nil), fast(), ModeSignVerbatim, backends.ErrBadChain},
		{"a leaf for the server side only is refused", data(p.leaf(t, func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}), nil), fast(), ModeSign, backends.ErrBadChain},
		{"a leaf for the client side only is refused", data(p.leaf(t, func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}), nil), fast(), ModeSign, backends.ErrBadChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Backend{cfg: Config{Mode: tt.mode}, signPath: "pki/sign/mesh"}
			resp, err := b.parseSigned(tt.sec, p.request(t, nil), tt.ca, p.now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("parseSigned: %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if len(resp.Chain) != 3 || !resp.Chain[1].Equal(p.inter) || !resp.Chain[2].Equal(p.root) ||
				len(resp.Roots) != 1 || !resp.Roots[0].Equal(p.root) {
				t.Fatalf("chain %v, roots %v; want leaf, intermediate, root and the root", subjects(resp.Chain),
					subjects(resp.Roots))
			}
		})
	}
}

// TestParseSignedFindsTheIntermediateWhereverVaultPutIt: on the full path the intermediate may come as
// issuing_ca, in ca_chain (as Vault's JSON or a string list) or after the leaf in certificate; missing
// everywhere, the chain is bad. A root with name constraints the leaf breaks is never passed by the fast path.
func TestParseSignedFindsTheIntermediateWhereverVaultPutIt(t *testing.T) {
	p := newSignPKI(t)
	leaf := p.leaf(t, nil)
	rootOnly := func() *caState {
		return &caState{chain: []*x509.Certificate{p.root}, anchors: []*x509.Certificate{p.root}}
	}
	tests := []struct {
		name string
		data map[string]any
		want error
	}{
		{"as issuing_ca", map[string]any{"certificate": pemOf(leaf), "issuing_ca": pemOf(p.inter)}, nil},
		{"in ca_chain", map[string]any{"certificate": pemOf(leaf), "ca_chain": []any{pemOf(p.inter)}}, nil},
		{"in ca_chain as strings", map[string]any{"certificate": pemOf(leaf), "ca_chain": []string{pemOf(p.inter)}},
			nil},
		{"after the leaf", map[string]any{"certificate": pemOf(leaf, p.inter)}, nil},
		{"nowhere", map[string]any{"certificate": pemOf(leaf), "issuing_ca": ""}, backends.ErrBadChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Backend{cfg: Config{Mode: ModeSign}, signPath: "pki/sign/mesh"}
			resp, err := b.parseSigned(&api.Secret{Data: tt.data}, p.request(t, nil), rootOnly(), p.now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("parseSigned: %v, want %v", err, tt.want)
			}
			if err == nil && (len(resp.Chain) != 3 || !resp.Chain[1].Equal(p.inter)) {
				t.Fatalf("chain %v, want leaf, intermediate, root", subjects(resp.Chain))
			}
		})
	}
	t.Run("a leaf outside the root's name constraints is refused", func(t *testing.T) {
		c := newSignPKIWith(t, func(r *x509.Certificate) { r.PermittedURIDomains = []string{"example.org"} })
		st := newCAState([]*x509.Certificate{c.inter, c.root}, []*x509.Certificate{c.root})
		b := &Backend{cfg: Config{Mode: ModeSign}, signPath: "pki/sign/mesh"}
		_, err := b.parseSigned(&api.Secret{Data: map[string]any{"certificate": pemOf(c.leaf(t, nil))}},
			c.request(t, nil), st, c.now)
		if !errors.Is(err, backends.ErrBadChain) {
			t.Fatalf("parseSigned: %v, want ErrBadChain (the root permits example.org only)", err)
		}
	})
}

// TestLeafRefusalsNameTheSettingToChange: a leaf Vault got wrong names the role settings in mode sign, and
// mode sign itself in sign-verbatim mode, where no role setting helps.
func TestLeafRefusalsNameTheSettingToChange(t *testing.T) {
	p := newSignPKI(t)
	wrong := p.leaf(t, func(c *x509.Certificate) { c.URIs[0], _ = url.Parse("spiffe://cluster.local/ns/a/sa/b") })
	for mode, hint := range map[string]string{ModeSign: "use_csr_sans=false", ModeSignVerbatim: "use mode sign"} {
		b := &Backend{cfg: Config{Mode: mode}, signPath: "pki/sign/mesh"}
		err := b.checkLeaf(p.request(t, nil), []*x509.Certificate{wrong, p.inter, p.root})
		if !errors.Is(err, backends.ErrBadChain) || !strings.Contains(err.Error(), hint) {
			t.Errorf("mode %s: %v, want ErrBadChain naming %q", mode, err, hint)
		}
	}
}

// TestChainLengthIsBounded: a chain of exactly maxChainLen certificates is built, one more is not.
func TestChainLengthIsBounded(t *testing.T) {
	now := time.Now()
	key := testpki.Key(t)
	ca := func(n int64) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(n),
			Subject:   pkix.Name{CommonName: "ca" + big.NewInt(n).String()},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign}
	}
	root := testpki.Sign(t, ca(0), nil, key.Public(), key)
	certs := []*x509.Certificate{root} // root, then each one issued by the one before
	for i := int64(1); i < maxChainLen+1; i++ {
		certs = append(certs, testpki.Sign(t, ca(i), certs[i-1], key.Public(), key))
	}
	// certs[k] chains to the root through k-1 intermediates: k+1 certificates in all.
	fits, over := certs[maxChainLen-1], certs[maxChainLen]
	chain, err := buildChain(fits, certs[1:], certs[:1], now)
	if err != nil || len(chain) != maxChainLen {
		t.Fatalf("a chain of %d: %d certificates, %v; want it built", maxChainLen, len(chain), err)
	}
	if _, err := buildChain(over, certs[1:], certs[:1], now); !errors.Is(err, backends.ErrBadChain) {
		t.Fatalf("a chain of %d: %v, want ErrBadChain", maxChainLen+1, err)
	}
}

// TestNameConstraintsAboveTheIssuerTakeTheFullPath: any name constraint on a certificate above the issuer turns
// the fast path off, whichever kind it is; none leaves it on.
func TestNameConstraintsAboveTheIssuerTakeTheFullPath(t *testing.T) {
	p := newSignPKI(t)
	_, ipnet, _ := net.ParseCIDR("10.0.0.0/8")
	tests := []struct {
		name string
		set  func(c *x509.Certificate)
		fast bool
	}{
		{"no constraint", func(*x509.Certificate) {}, true},
		{"permitted DNS domains", func(c *x509.Certificate) { c.PermittedDNSDomains = []string{"a"} }, false},
		{"excluded DNS domains", func(c *x509.Certificate) { c.ExcludedDNSDomains = []string{"a"} }, false},
		{"permitted IP ranges", func(c *x509.Certificate) { c.PermittedIPRanges = []*net.IPNet{ipnet} }, false},
		{"excluded IP ranges", func(c *x509.Certificate) { c.ExcludedIPRanges = []*net.IPNet{ipnet} }, false},
		{"permitted email addresses", func(c *x509.Certificate) { c.PermittedEmailAddresses = []string{"a"} }, false},
		{"excluded email addresses", func(c *x509.Certificate) { c.ExcludedEmailAddresses = []string{"a"} }, false},
		{"permitted URI domains", func(c *x509.Certificate) { c.PermittedURIDomains = []string{"a"} }, false},
		{"excluded URI domains", func(c *x509.Certificate) { c.ExcludedURIDomains = []string{"a"} }, false},
		{"a critical constraints extension", func(c *x509.Certificate) { c.PermittedDNSDomainsCritical = true },
			false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := *p.root
			tt.set(&root)
			if st := newCAState([]*x509.Certificate{p.inter, &root}, []*x509.Certificate{&root}); st.fast != tt.fast {
				t.Fatalf("fast path %v, want %v", st.fast, tt.fast)
			}
		})
	}
}

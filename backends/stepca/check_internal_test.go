package stepca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/internal/testpki"
)

// The tests in this file check, without a step-ca server, what the backend refuses before sending and what it
// accepts of an answer, with real certificates made by a root and an intermediate of their own.

const checkID = "spiffe://cluster.local/ns/default/sa/web"

type stepPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
	leafKey           crypto.Signer
	now               time.Time
}

func newStepPKI(t *testing.T) *stepPKI {
	t.Helper()
	p := &stepPKI{rootKey: testpki.Key(t), interKey: testpki.Key(t), leafKey: testpki.Key(t), now: time.Now()}
	ca := func(cn string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: p.now.Add(-time.Hour),
			NotAfter: p.now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	}
	p.root = testpki.Sign(t, ca("root"), nil, p.rootKey.Public(), p.rootKey)
	p.inter = testpki.Sign(t, ca("intermediate"), p.root, p.interKey.Public(), p.rootKey)
	return p
}

// leaf returns the workload certificate step-ca should issue for request(nil), changed by edit.
func (p *stepPKI) leaf(t *testing.T, edit func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	tmpl := testpki.WorkloadTemplate(t, checkID, p.now)
	if edit != nil {
		edit(tmpl)
	}
	return testpki.Sign(t, tmpl, p.inter, p.leafKey.Public(), p.interKey)
}

// csrFor is a CSR by the leaf key asking for the given SANs.
func (p *stepPKI) csrFor(t *testing.T, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, p.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// request is a sign request for checkID whose CSR asks for exactly its SANs, changed by edit.
func (p *stepPKI) request(t *testing.T, edit func(*backends.SignRequest)) *backends.SignRequest {
	t.Helper()
	u, _ := url.Parse(checkID)
	r := &backends.SignRequest{CSR: p.csrFor(t, &x509.CertificateRequest{URIs: []*url.URL{u}}),
		PublicKey: p.leafKey.Public(), URIs: []*url.URL{u}, TTL: time.Hour}
	if edit != nil {
		edit(r)
	}
	return r
}

func pemOf(cs ...*x509.Certificate) string {
	var out []byte
	for _, c := range cs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return string(out)
}

// TestCheckRequestNeedsTheCSRsExactSANs: step-ca certifies a CSR only with exactly the token's SANs, so a request
// whose CSR differs, or that step-ca cannot sign as asked, is refused before anything is sent.
func TestCheckRequestNeedsTheCSRsExactSANs(t *testing.T) {
	p := newStepPKI(t)
	u := func(s string) *url.URL { v, _ := url.Parse(s); return v }
	ip1, ip2 := net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2)
	all := &x509.CertificateRequest{URIs: []*url.URL{u(checkID)}, DNSNames: []string{"a.example", "b.example"},
		IPAddresses: []net.IP{ip1, ip2}}
	withAll := func(csr *x509.CertificateRequest) func(r *backends.SignRequest) {
		return func(r *backends.SignRequest) {
			r.CSR, r.DNSNames, r.IPAddresses = p.csrFor(t, csr), []string{"a.example", "b.example"}, []net.IP{ip1, ip2}
		}
	}
	tests := []struct {
		name    string
		edit    func(*backends.SignRequest)
		nilReq  bool
		wantSAN []string // nil: refused
	}{
		{"one SPIFFE ID is sent", nil, false, []string{checkID}},
		{"URIs, DNS names and IPs are sent in that order", withAll(all), false,
			[]string{checkID, "a.example", "b.example", "10.0.0.1", "10.0.0.2"}},
		{"a DNS name alone is sent", func(r *backends.SignRequest) {
			r.URIs, r.DNSNames = nil, []string{"a.example"}
			r.CSR = p.csrFor(t, &x509.CertificateRequest{DNSNames: []string{"a.example"}})
		}, false, []string{"a.example"}},
		{"a TTL of a nanosecond is sent", func(r *backends.SignRequest) { r.TTL = 1 }, false, []string{checkID}},
		{"no request is refused", nil, true, nil},
		{"a request without CSR is refused", func(r *backends.SignRequest) { r.CSR = nil }, false, nil},
		{"a key other than the CSR's is refused",
			func(r *backends.SignRequest) { r.PublicKey = testpki.Key(t).Public() }, false, nil},
		{"a zero TTL is refused", func(r *backends.SignRequest) { r.TTL = 0 }, false, nil},
		{"a subject is refused", func(r *backends.SignRequest) { r.Subject.CommonName = "web" }, false, nil},
		{"a URI SAN that is not a workload's SPIFFE ID is refused", func(r *backends.SignRequest) {
			r.URIs = []*url.URL{u("spiffe://cluster.local/ns/a/b/sa/c")}
			r.CSR = p.csrFor(t, &x509.CertificateRequest{URIs: r.URIs})
		}, false, nil},
		{"no SAN is refused", func(r *backends.SignRequest) {
			r.URIs, r.CSR = nil, p.csrFor(t, &x509.CertificateRequest{})
		}, false, nil},
		{"a CSR for another SPIFFE ID is refused", func(r *backends.SignRequest) {
			r.CSR = p.csrFor(t, &x509.CertificateRequest{URIs: []*url.URL{u("spiffe://cluster.local/ns/a/sa/b")}})
		}, false, nil},
		{"a CSR with a URI more is refused", func(r *backends.SignRequest) {
			r.CSR = p.csrFor(t, &x509.CertificateRequest{URIs: []*url.URL{u(checkID), u("spiffe://x/ns/a/sa/b")}})
		}, false, nil},
		{"a CSR with a DNS name more is refused", withAll(&x509.CertificateRequest{URIs: all.URIs,
			DNSNames: []string{"a.example", "b.example", "c.example"}, IPAddresses: all.IPAddresses}), false, nil},
		{"a CSR with DNS names in another order is refused", withAll(&x509.CertificateRequest{URIs: all.URIs,
			DNSNames: []string{"b.example", "a.example"}, IPAddresses: all.IPAddresses}), false, nil},
		{"a CSR with an IP fewer is refused", withAll(&x509.CertificateRequest{URIs: all.URIs,
			DNSNames: all.DNSNames, IPAddresses: []net.IP{ip1}}), false, nil},
		{"a CSR with another IP is refused", withAll(&x509.CertificateRequest{URIs: all.URIs,
			DNSNames: all.DNSNames, IPAddresses: []net.IP{ip1, net.IPv4(10, 0, 0, 3)}}), false, nil},
		{"a CSR with an email address is refused", func(r *backends.SignRequest) {
			r.CSR = p.csrFor(t, &x509.CertificateRequest{URIs: r.URIs, EmailAddresses: []string{"a@example.com"}})
		}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := p.request(t, tt.edit)
			if tt.nilReq {
				req = nil
			}
			sans, err := checkRequest(req)
			if tt.wantSAN == nil {
				if !errors.Is(err, backends.ErrRefused) {
					t.Fatalf("checkRequest = %v, %v; want ErrRefused", sans, err)
				}
				return
			}
			if err != nil || !slices.Equal(sans, tt.wantSAN) {
				t.Fatalf("checkRequest = %v, %v; want %v", sans, err, tt.wantSAN)
			}
		})
	}
}

// trustedBackend is a Backend whose trust state (step-ca's roots) is set, fresh, as if just fetched.
func trustedBackend(p *stepPKI, roots ...*x509.Certificate) *Backend {
	b := &Backend{cfg: Config{Clock: func() time.Time { return p.now }, RootsRefresh: time.Hour}}
	st := &trustState{roots: roots, pool: x509.NewCertPool(), fetched: p.now}
	for _, r := range roots {
		st.pool.AddCert(r)
	}
	b.state.Store(st)
	return b
}

// TestVerifyIssuedChecksStepCAsAnswer: the certificates step-ca returns must chain to its pinned roots and the
// leaf must be exactly the one requested.
func TestVerifyIssuedChecksStepCAsAnswer(t *testing.T) {
	p := newStepPKI(t)
	other := newStepPKI(t)
	tests := []struct {
		name string
		pems []string
		want error
	}{
		{"the requested leaf with its intermediate is accepted", []string{pemOf(p.leaf(t, nil)), pemOf(p.inter)}, nil},
		{"leaf and intermediate in one PEM are accepted", []string{pemOf(p.leaf(t, nil), p.inter)}, nil},
		{"a response that is not PEM is a bad chain", []string{pemOf(p.leaf(t, nil)), "junk"}, backends.ErrBadChain},
		{"a leaf without its intermediate is a bad chain", []string{pemOf(p.leaf(t, nil))}, backends.ErrBadChain},
		{"a leaf of another CA is a bad chain", []string{pemOf(other.leaf(t, nil)), pemOf(other.inter)},
			backends.ErrBadChain},
		{"a leaf for another identity is refused", []string{pemOf(p.leaf(t, func(c *x509.Certificate) {
			c.URIs[0], _ = url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
		})), pemOf(p.inter)}, backends.ErrBadChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, roots, err := trustedBackend(p, p.root).verifyIssued(t.Context(), tt.pems, p.request(t, nil))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("verifyIssued: %v, want %v", err, tt.want)
			}
			if err == nil &&
				(len(chain) != 3 || !chain[2].Equal(p.root) || len(roots) != 1 || !roots[0].Equal(p.root)) {
				t.Fatalf("chain of %d ending %v, roots %d; want leaf, intermediate, root", len(chain),
					chain[len(chain)-1].Subject, len(roots))
			}
		})
	}
	t.Run("the shortest verified chain is returned", func(t *testing.T) {
		// The intermediate is also a trusted root here: leaf → intermediate is a complete chain.
		chain, _, err := trustedBackend(p, p.root, p.inter).verifyIssued(t.Context(),
			[]string{pemOf(p.leaf(t, nil)), pemOf(p.inter)}, p.request(t, nil))
		if err != nil || len(chain) != 2 {
			t.Fatalf("verifyIssued = %d certificates, %v; want leaf and intermediate", len(chain), err)
		}
	})
}

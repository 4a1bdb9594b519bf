package backends

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
	"slices"
	"testing"
	"time"
)

const testID = "spiffe://cluster.local/ns/default/sa/a"

// tamperedLeaves are leaves that an honest CA signed for the wrong content. Each breaks exactly one rule of
// CheckLeaf; tamper edits the honest template and returns the key to certify (nil: the requested key).
var tamperedLeaves = []struct {
	name   string
	rule   string
	tamper func(t *testing.T, tmpl *x509.Certificate, req *SignRequest) crypto.PublicKey
}{
	{"a leaf certifying another key", "public key",
		func(t *testing.T, _ *x509.Certificate, _ *SignRequest) crypto.PublicKey { return ecKey(t).Public() }},
	{"a subject of CN=admin, O=system:masters copied from the CSR", "subject",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.Subject = pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}
			return nil
		}},
	{"the CSR's O= next to the requested common name", "subject",
		func(_ *testing.T, tmpl *x509.Certificate, req *SignRequest) crypto.PublicKey {
			req.Subject = pkix.Name{CommonName: testID}
			tmpl.Subject = pkix.Name{CommonName: testID, Organization: []string{"cluster.local"}}
			return nil
		}},
	{"a UPN otherName SAN next to the requested URI", "subject alternative names",
		func(t *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.ExtraExtensions = []pkix.Extension{sanExtension(t, uriName(testID), upnName(t, "admin@corp.example"))}
			return nil
		}},
	{"a registeredID SAN next to the requested URI", "subject alternative names",
		func(t *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.ExtraExtensions = []pkix.Extension{sanExtension(t, uriName(testID),
				registeredIDName(t, asn1.ObjectIdentifier{1, 2, 3, 4}))}
			return nil
		}},
	{"a directoryName SAN next to the requested URI", "subject alternative names",
		func(t *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.ExtraExtensions = []pkix.Extension{sanExtension(t, uriName(testID),
				directoryName(t, pkix.Name{CommonName: "admin"}))}
			return nil
		}},
	{"an email SAN that was not requested", "subject alternative names",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.EmailAddresses = []string{"admin@corp.example"}
			return nil
		}},
	{"an IP SAN that was not requested", "subject alternative names",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.IPAddresses = []net.IP{net.IPv4(10, 0, 0, 1)}
			return nil
		}},
	{"a DNS SAN that was not requested", "subject alternative names",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.DNSNames = []string{"kubernetes.default.svc"}
			return nil
		}},
	{"the URI SAN of another identity", "subject alternative names",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			u, _ := url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
			tmpl.URIs = []*url.URL{u}
			return nil
		}},
	{"a second URI SAN next to the requested one", "subject alternative names",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			u, _ := url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
			tmpl.URIs = append(tmpl.URIs, u)
			return nil
		}},
	{"no SAN at all", "subject alternative names",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.URIs = nil
			return nil
		}},
	{"a CA certificate", "basic constraints",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.IsCA = true
			return nil
		}},
	{"keyUsage keyCertSign and cRLSign", "key usage",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
			return nil
		}},
	{"keyEncipherment on an ECDSA key", "key usage",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
			return nil
		}},
	{"no keyUsage extension", "key usage",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.KeyUsage = 0
			return nil
		}},
	{"extKeyUsage codeSigning and OCSPSigning", "extended key usage",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageCodeSigning, x509.ExtKeyUsageOCSPSigning)
			return nil
		}},
	{"extKeyUsage anyExtendedKeyUsage", "extended key usage",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
			return nil
		}},
	{"an extKeyUsage crypto/x509 does not know", "extended key usage",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.UnknownExtKeyUsage = []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}} // smart-card logon
			return nil
		}},
	{"no extKeyUsage extension", "extended key usage",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.ExtKeyUsage = nil
			return nil
		}},
	{"id-pkix-ocsp-nocheck", "extensions",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5},
				Value: []byte{0x05, 0x00}}}
			return nil
		}},
	{"a certificate policies extension", "extensions",
		func(t *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			anyPolicy, err := x509.OIDFromInts([]uint64{2, 5, 29, 32, 0})
			if err != nil {
				t.Fatal(err)
			}
			tmpl.Policies = []x509.OID{anyPolicy}
			return nil
		}},
	{"a leaf that outlives its issuer", "validity",
		func(_ *testing.T, tmpl *x509.Certificate, _ *SignRequest) crypto.PublicKey {
			tmpl.NotAfter = time.Now().Add(365 * 24 * time.Hour)
			return nil
		}},
}

// TestCheckLeafRefusesTamperedLeaves: every tampered leaf, signed by the right CA, is refused with ErrBadChain;
// and with its rule removed, CheckLeaf accepts it, so each case tests its own rule and deleting a rule fails
// the test. It runs for classical leaves under an ECDSA CA and for composite leaves under a composite CA.
func TestCheckLeafRefusesTamperedLeaves(t *testing.T) {
	for _, pki := range testPKIs(t) {
		for _, tt := range tamperedLeaves {
			t.Run(pki.name+"/"+tt.name, func(t *testing.T) {
				req := workloadRequest(t, pki.newKey(t), testID)
				tmpl := honestTemplate(req)
				pub := tt.tamper(t, tmpl, req)
				if pub == nil {
					pub = req.PublicKey
				}
				chain := pki.ca.issue(t, tmpl, pub)
				err := CheckLeaf(req, chain)
				if !errors.Is(err, ErrBadChain) {
					t.Fatalf("CheckLeaf = %v, want ErrBadChain", err)
				}
				t.Logf("refused: %v", err)
				without := slices.DeleteFunc(slices.Clone(leafRules),
					func(r leafRule) bool { return r.name == tt.rule })
				if len(without) != len(leafRules)-1 {
					t.Fatalf("no rule named %q", tt.rule)
				}
				if err := checkLeaf(without, req, chain, cdpRule{}); err != nil {
					t.Fatalf("without the %q rule the leaf is still refused, so this case does not test that rule: %v",
						tt.rule, err)
				}
			})
		}
	}
}

func TestCheckLeafAcceptsWorkloadCertificates(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name string
		key  crypto.Signer
		edit func(tmpl *x509.Certificate, req *SignRequest)
	}{
		{"an ECDSA leaf with one URI SAN and an empty subject", ecKey(t), nil},
		{"an RSA leaf with keyEncipherment", rsaKey(t), nil},
		{"an RSA leaf with digitalSignature only", rsaKey(t),
			func(tmpl *x509.Certificate, _ *SignRequest) { tmpl.KeyUsage = x509.KeyUsageDigitalSignature }},
		{"a leaf with the requested common name", ecKey(t), func(tmpl *x509.Certificate, req *SignRequest) {
			req.Subject = pkix.Name{CommonName: testID}
			tmpl.Subject = req.Subject
		}},
		{"a leaf with DNS and IP SANs in another order than requested", ecKey(t),
			func(tmpl *x509.Certificate, req *SignRequest) {
				req.DNSNames = []string{"a.default.svc", "meshca.example"}
				req.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
				tmpl.DNSNames = []string{"meshca.example", "a.default.svc"}
				tmpl.IPAddresses = []net.IP{net.IPv6loopback, net.IPv4(127, 0, 0, 1).To4()}
			}},
		{"a serving certificate with serverAuth only", ecKey(t), func(tmpl *x509.Certificate, _ *SignRequest) {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}},
		{"a leaf with CRL distribution points and authority information access", ecKey(t),
			func(tmpl *x509.Certificate, _ *SignRequest) {
				tmpl.CRLDistributionPoints = []string{"http://ca.example/crl"}
				tmpl.IssuingCertificateURL = []string{"http://ca.example/ca.crt"}
				tmpl.OCSPServer = []string{"http://ca.example/ocsp"}
			}},
		{"a leaf without basicConstraints", ecKey(t), func(tmpl *x509.Certificate, _ *SignRequest) {
			tmpl.BasicConstraintsValid = false
		}},
		{"a leaf that ends with its issuer", ecKey(t), func(tmpl *x509.Certificate, _ *SignRequest) {
			tmpl.NotAfter = ca.cert.NotAfter
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := workloadRequest(t, tt.key, testID)
			tmpl := honestTemplate(req)
			if tt.edit != nil {
				tt.edit(tmpl, req)
			}
			if err := CheckLeaf(req, ca.issue(t, tmpl, req.PublicKey)); err != nil {
				t.Fatalf("CheckLeaf: %v", err)
			}
		})
	}
}

func TestCheckLeafRefusesShortChains(t *testing.T) {
	ca := newTestCA(t)
	req := workloadRequest(t, ecKey(t), testID)
	chain := ca.issue(t, honestTemplate(req), req.PublicKey)
	for name, c := range map[string][]*x509.Certificate{
		"no chain": nil, "the leaf alone": chain[:1], "a nil issuer": {chain[0], nil},
	} {
		if err := CheckLeaf(req, c); !errors.Is(err, ErrBadChain) {
			t.Errorf("CheckLeaf with %s = %v, want ErrBadChain", name, err)
		}
	}
	if err := CheckLeaf(nil, chain); !errors.Is(err, ErrBadChain) {
		t.Errorf("CheckLeaf without a request = %v, want ErrBadChain", err)
	}
}

// TestCheckLeafBoundsQuotedContent: a subject copied from a caller's CSR may be long; the error quotes a
// bounded prefix of it.
func TestCheckLeafBoundsQuotedContent(t *testing.T) {
	ca := newTestCA(t)
	req := workloadRequest(t, ecKey(t), testID)
	tmpl := honestTemplate(req)
	long := make([]byte, 4000)
	for i := range long {
		long[i] = 'a'
	}
	tmpl.Subject = pkix.Name{Organization: []string{string(long)}}
	err := CheckLeaf(req, ca.issue(t, tmpl, req.PublicKey))
	if !errors.Is(err, ErrBadChain) || len(err.Error()) > 2*maxShown+200 {
		t.Fatalf("CheckLeaf = %d bytes of error (%v), want ErrBadChain quoting a bounded subject",
			len(err.Error()), err)
	}
}

func TestParseGeneralNamesRefusesMalformedExtensions(t *testing.T) {
	for name, der := range map[string][]byte{
		"empty":                    nil,
		"not a sequence":           {0x04, 0x00},
		"trailing data":            {0x30, 0x00, 0x00},
		"a universal-class entry":  {0x30, 0x02, 0x04, 0x00},
		"a 5-byte IP address":      {0x30, 0x07, 0x87, 0x05, 1, 2, 3, 4, 5},
		"a constructed DNS name":   {0x30, 0x02, 0xa2, 0x00},
		"a truncated entry":        {0x30, 0x03, 0x86, 0x05, 'a'},
		"a constructed URI":        {0x30, 0x02, 0xa6, 0x00},
		"a constructed IP address": {0x30, 0x02, 0xa7, 0x00},
	} {
		if _, err := parseGeneralNames(der); err == nil {
			t.Errorf("parseGeneralNames(%s) succeeded", name)
		}
	}
}

// FuzzParseGeneralNames: any input parses or fails without a panic, and whatever parses agrees with
// crypto/x509 on the names both understand.
func FuzzParseGeneralNames(f *testing.F) {
	ca := newTestCA(f)
	req := workloadRequest(f, ecKey(f), testID)
	tmpl := honestTemplate(req)
	tmpl.DNSNames, tmpl.IPAddresses = []string{"a.example"}, []net.IP{net.IPv4(10, 0, 0, 1)}
	tmpl.EmailAddresses = []string{"a@example.com"}
	for _, ext := range ca.issue(f, tmpl, req.PublicKey)[0].Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			f.Add(ext.Value)
		}
	}
	f.Add(sanExtension(f, uriName(testID), upnName(f, "admin@corp"), registeredIDName(f, asn1.ObjectIdentifier{1, 2}),
		directoryName(f, pkix.Name{CommonName: "x"})).Value)
	f.Fuzz(func(t *testing.T, der []byte) {
		names, err := parseGeneralNames(der)
		if err != nil {
			return
		}
		for _, ip := range names.ips {
			if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
				t.Fatalf("IP SAN of %d bytes accepted", len(ip))
			}
		}
	})
}

func TestCSRNamesExactly(t *testing.T) {
	key := ecKey(t)
	spiffe, _ := url.Parse("spiffe://cluster.local/ns/a/sa/b")
	other, _ := url.Parse("spiffe://cluster.local/ns/a/sa/c")
	req := &SignRequest{URIs: []*url.URL{spiffe}, DNSNames: []string{"b.a.svc", "b"}}
	tests := []struct {
		name string
		csr  x509.CertificateRequest
		want bool
	}{
		{"the same names in another order", x509.CertificateRequest{URIs: []*url.URL{spiffe},
			DNSNames: []string{"b", "b.a.svc"}}, true},
		{"another SPIFFE ID", x509.CertificateRequest{URIs: []*url.URL{other}, DNSNames: []string{"b", "b.a.svc"}},
			false},
		{"a DNS name missing", x509.CertificateRequest{URIs: []*url.URL{spiffe}, DNSNames: []string{"b"}}, false},
		{"an extra IP address", x509.CertificateRequest{URIs: []*url.URL{spiffe}, DNSNames: []string{"b", "b.a.svc"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, false},
		{"an email address", x509.CertificateRequest{URIs: []*url.URL{spiffe}, DNSNames: []string{"b", "b.a.svc"},
			EmailAddresses: []string{"root@example.com"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := x509.CreateCertificateRequest(rand.Reader, &tt.csr, key)
			if err != nil {
				t.Fatal(err)
			}
			r := *req
			if r.CSR, err = x509.ParseCertificateRequest(der); err != nil {
				t.Fatal(err)
			}
			if got := r.CSRNamesExactly(); got != tt.want {
				t.Fatalf("CSRNamesExactly() = %v, want %v", got, tt.want)
			}
		})
	}
}

package vault_test

import (
	"crypto"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/backends/vault/vaulttest"
	"github.com/meshca/meshca/csr"
)

const testID = "spiffe://cluster.local/ns/default/sa/bookinfo"

func TestSignIssuesExactIdentityWithFullChain(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	b := newBackend(t, config(t, s, p))
	for _, kind := range []string{"ecdsa", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			req := request(t, kind, testID, 2*time.Hour)
			start := time.Now()
			resp, err := b.Sign(ctxTimeout(t, 10*time.Second), req)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			t.Logf("%s signed in %s", kind, time.Since(start))
			if len(resp.Chain) != 3 {
				t.Fatalf("chain has %d certificates, want leaf, intermediate and root", len(resp.Chain))
			}
			if !resp.Chain[1].Equal(p.Intermediate) || !resp.Chain[2].Equal(p.Root) {
				t.Fatalf("chain is %q, %q, %q; want leaf, %q, %q", resp.Chain[0].Subject, resp.Chain[1].Subject,
					resp.Chain[2].Subject, p.Intermediate.Subject, p.Root.Subject)
			}
			verifyChain(t, resp.Chain, p.Root)
			leaf := resp.Leaf()
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != testID {
				t.Errorf("leaf URI SANs are %v, want exactly %s", leaf.URIs, testID)
			}
			if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
				t.Errorf("leaf has extra SANs: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
			}
			if leaf.Subject.CommonName != "" {
				t.Errorf("leaf common name %q, want none", leaf.Subject.CommonName)
			}
			if got := leaf.NotAfter.Sub(start); got < 2*time.Hour-5*time.Second || got > 2*time.Hour+5*time.Second {
				t.Errorf("leaf lives %s from the request, want the requested 2h", got)
			}
			if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(req.PublicKey) {
				t.Error("leaf does not certify the requested key")
			}
		})
	}
}

// The identity comes from the request, never from the CSR: a CSR asking for someone else's ID gets the
// request's identity (the core has refused such CSRs already; this proves Vault does not read the CSR's SANs).
func TestSignTakesIdentityFromRequestNotCSR(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	b := newBackend(t, config(t, s, p))
	key := newKey(t, "ecdsa")
	c := newCSR(t, key, "spiffe://cluster.local/ns/kube-system/sa/admin")
	u, _ := url.Parse(testID)
	resp, err := b.Sign(ctxTimeout(t, 10*time.Second), &backends.SignRequest{CSR: c, PublicKey: c.PublicKey,
		URIs: []*url.URL{u}, TTL: time.Hour})
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if got := resp.Leaf().URIs; len(got) != 1 || got[0].String() != testID {
		t.Fatalf("leaf URI SANs %v, want exactly %s", got, testID)
	}
}

// Vault caps a TTL above the role's max_ttl without an error; the backend notices and logs it.
func TestSignDetectsTTLCapping(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{MaxTTL: time.Hour})
	cfg := config(t, s, p)
	var logs logBuffer
	cfg.Logger = testLogger(t, &logs)
	b := newBackend(t, cfg)
	resp, err := b.Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, 5*time.Hour))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if got := time.Until(resp.Leaf().NotAfter); got > time.Hour+time.Minute {
		t.Fatalf("leaf lives %s, want Vault's cap of 1h", got)
	}
	l := logs.String()
	if !strings.Contains(l, `"msg":"vault issued a shorter lifetime than requested`) ||
		!strings.Contains(l, `"requested_ttl":"5h0m0s"`) ||
		!regexp.MustCompile(`"granted_ttl":"(59m5\ds|1h0m0s)"`).MatchString(l) {
		t.Fatalf("no structured warning about the capped TTL in the log:\n%s", l)
	}

	var logs2 logBuffer
	cfg.Logger = testLogger(t, &logs2)
	short := request(t, "ecdsa", testID, 30*time.Minute)
	if _, err := newBackend(t, cfg).Sign(ctxTimeout(t, 10*time.Second), short); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if strings.Contains(logs2.String(), "shorter lifetime") {
		t.Fatalf("warning logged for a TTL under max_ttl:\n%s", logs2.String())
	}
}

// Chain pitfalls: the mount may not hold the root (ca_chain ends at the intermediate), and the trust anchor
// may be pinned by fingerprint instead of configured as PEM.
func TestSignChainPitfalls(t *testing.T) {
	s := devVault(t)
	t.Run("root missing from the mount", func(t *testing.T) {
		p := s.PKI(t, vaulttest.PKIOptions{OmitRoot: true})
		req := request(t, "ecdsa", testID, time.Hour)
		resp, err := newBackend(t, config(t, s, p)).Sign(ctxTimeout(t, 10*time.Second), req)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		if len(resp.Chain) != 3 {
			t.Fatalf("chain has %d certificates, want 3 with the configured root appended", len(resp.Chain))
		}
		verifyChain(t, resp.Chain, p.Root)
	})
	t.Run("root pinned by fingerprint", func(t *testing.T) {
		p := s.PKI(t, vaulttest.PKIOptions{})
		cfg := config(t, s, p)
		cfg.RootsPEM = ""
		cfg.RootFingerprints = []string{strings.ToUpper(colons(vault.Fingerprint(p.Root)))}
		b := newBackend(t, cfg)
		roots, _ := b.Roots(t.Context())
		if len(roots) != 1 || !roots[0].Equal(p.Root) {
			t.Fatalf("Roots = %v, want the pinned root", roots)
		}
		chain, err := b.CAChain(t.Context())
		if err != nil || len(chain) != 2 || !chain[0].Equal(p.Intermediate) || !chain[1].Equal(p.Root) {
			t.Fatalf("CAChain = %v, %v; want intermediate, root", chain, err)
		}
		resp, err := b.Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour))
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		verifyChain(t, resp.Chain, p.Root)
	})
	t.Run("wrong pinned fingerprint", func(t *testing.T) {
		p := s.PKI(t, vaulttest.PKIOptions{})
		other := s.PKI(t, vaulttest.PKIOptions{})
		cfg := config(t, s, p)
		cfg.RootsPEM = ""
		cfg.RootFingerprints = []string{vault.Fingerprint(other.Root)}
		_, err := vault.New(t.Context(), cfg)
		if err == nil || !strings.Contains(err.Error(), "no certificate with sha256") {
			t.Fatalf("New with a foreign pin: %v, want a pin mismatch", err)
		}
	})
	t.Run("wrong root configured", func(t *testing.T) {
		p := s.PKI(t, vaulttest.PKIOptions{})
		other := s.PKI(t, vaulttest.PKIOptions{})
		cfg := config(t, s, p)
		cfg.RootsPEM = other.RootPEM
		if _, err := vault.New(t.Context(), cfg); !errors.Is(err, backends.ErrBadChain) {
			t.Fatalf("New with a foreign root: %v, want ErrBadChain", err)
		}
	})
}

func colons(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// Refusals: a bad SPIFFE shape is refused before anything reaches Vault (the role's glob would let
// ns/a/b/sa/c through), and a role refusal from Vault is ErrRefused.
func TestSignRefusals(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	cfg := config(t, s, p)
	b := newBackend(t, cfg)
	direct := s.Client(t)

	// Vault itself accepts the extra path segments: the check must be meshca's.
	badShape := "spiffe://cluster.local/ns/a/b/sa/c"
	if _, err := direct.Logical().Write(p.Mount+"/sign/"+p.Role, map[string]any{
		"csr": pemCSR(newCSR(t, newKey(t, "ecdsa"))), "uri_sans": badShape, "ttl": "1h",
	}); err != nil {
		t.Fatalf("Vault refused %s (%v); this test assumes its glob matches '/'", badShape, err)
	}

	mod := func(f func(r *backends.SignRequest)) func(t *testing.T) *backends.SignRequest {
		return func(t *testing.T) *backends.SignRequest {
			r := request(t, "ecdsa", testID, time.Hour)
			f(r)
			return r
		}
	}
	uri := func(s string) *url.URL { u, _ := url.Parse(s); return u }
	tests := []struct {
		name    string
		req     func(t *testing.T) *backends.SignRequest
		want    error
		andWant error
	}{
		{"extra path segments that Vault's glob accepts are refused before sending",
			mod(func(r *backends.SignRequest) { r.URIs = []*url.URL{uri(badShape)} }),
			backends.ErrRefused, csr.ErrInvalidID},
		{"a non-SPIFFE URI is refused before sending",
			mod(func(r *backends.SignRequest) { r.URIs = []*url.URL{uri("https://cluster.local/ns/a/sa/b")} }),
			backends.ErrRefused, csr.ErrInvalidID},
		{"a query string is refused before sending",
			mod(func(r *backends.SignRequest) { r.URIs = []*url.URL{uri(testID + "?x=1")} }),
			backends.ErrRefused, csr.ErrInvalidID},
		{"a trust domain outside the role's glob is refused by Vault",
			mod(func(r *backends.SignRequest) { r.URIs = []*url.URL{uri("spiffe://other.domain/ns/a/sa/b")} }),
			backends.ErrRefused, nil},
		{"a DNS SAN the role does not allow is refused by Vault",
			mod(func(r *backends.SignRequest) { r.DNSNames = []string{"evil.example.com"} }), backends.ErrRefused, nil},
		{"an IP SAN the role does not allow is refused by Vault",
			mod(func(r *backends.SignRequest) { r.IPAddresses = []net.IP{net.IPv4(10, 0, 0, 1)} }),
			backends.ErrRefused, nil},
		{"a key other than the CSR's is refused before sending",
			mod(func(r *backends.SignRequest) { r.PublicKey = newKey(t, "ecdsa").Public() }), backends.ErrRefused, nil},
		{"a request without CSR is refused before sending",
			mod(func(r *backends.SignRequest) { r.CSR = nil }), backends.ErrRefused, nil},
		{"a zero TTL is refused before sending",
			mod(func(r *backends.SignRequest) { r.TTL = 0 }), backends.ErrRefused, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.Sign(ctxTimeout(t, 10*time.Second), tt.req(t))
			if !errors.Is(err, tt.want) || (tt.andWant != nil && !errors.Is(err, tt.andWant)) {
				t.Fatalf("Sign: %v; want errors.Is %v (and %v)", err, tt.want, tt.andWant)
			}
			if errors.Is(err, backends.ErrUnavailable) {
				t.Fatalf("Sign: %v is also ErrUnavailable", err)
			}
			if sent := strings.Contains(err.Error(), "HTTP 4"); sent != strings.HasSuffix(tt.name, "by Vault") {
				t.Fatalf("Sign: %v; Vault answered: %v, want %v", err, sent, !sent)
			}
		})
	}

	t.Run("an unknown role is refused by Vault", func(t *testing.T) {
		c := cfg
		c.Role = "nosuchrole"
		_, err := newBackend(t, c).Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour))
		if !errors.Is(err, backends.ErrRefused) {
			t.Fatalf("Sign: %v, want ErrRefused", err)
		}
	})
	t.Run("a token without the policy is unavailable, not refused", func(t *testing.T) {
		c := cfg
		c.Auth.Token = vault.Secret(s.CreateToken(t, time.Hour, true, "default"))
		_, err := newBackend(t, c).Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour))
		if !errors.Is(err, backends.ErrUnavailable) || errors.Is(err, backends.ErrRefused) {
			t.Fatalf("Sign: %v, want ErrUnavailable", err)
		}
	})
}

// The issuer can be selected by name; the chain then comes from that issuer.
func TestSignWithIssuerRef(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	// A second issuer in the same mount, not the default, signed by the same root.
	csrSec := s.Write(t, p.Mount+"/intermediate/generate/internal",
		map[string]any{"common_name": "second intermediate", "key_type": "ec"})
	signed := s.Write(t, p.RootMount+"/root/sign-intermediate",
		map[string]any{"csr": csrSec.Data["csr"], "format": "pem", "ttl": "8760h"})
	bundle := signed.Data["certificate"].(string) + "\n" + p.RootPEM
	imp := s.Write(t, p.Mount+"/issuers/import/cert", map[string]any{"pem_bundle": bundle})
	second := vaulttest.ParsePEM(t, signed.Data["certificate"].(string))
	var id string
	for iss, cert := range imp.Data["mapping"].(map[string]any) {
		if cert != "" {
			c := s.Read(t, p.Mount+"/issuer/"+iss+"/json")
			if vaulttest.ParsePEM(t, c.Data["certificate"].(string)).Equal(second) {
				id = iss
			}
		}
	}
	if id == "" {
		t.Fatalf("imported issuer not found in %v", imp.Data)
	}
	s.Write(t, p.Mount+"/issuer/"+id, map[string]any{"issuer_name": "second"})
	cfg := config(t, s, p)
	cfg.IssuerRef = "second"
	b := newBackend(t, cfg)
	resp, err := b.Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if !resp.Chain[1].Equal(second) {
		t.Fatalf("signed by %q, want the selected issuer %q", resp.Chain[1].Subject, second.Subject)
	}
	verifyChain(t, resp.Chain, p.Root)
	crl, err := b.CRL(t.Context())
	if err != nil {
		t.Fatalf("CRL of the selected issuer: %v", err)
	}
	rl, _ := x509.ParseRevocationList(crl)
	if rl.CheckSignatureFrom(second) != nil {
		t.Fatal("CRL is not the selected issuer's")
	}
}

func pemCSR(c *x509.CertificateRequest) string {
	return string(pemBlock("CERTIFICATE REQUEST", c.Raw))
}

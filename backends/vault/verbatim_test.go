package vault_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/backends/vault/vaulttest"
)

// hostileCSR is a CSR for key that names only id in its SANs, as the core requires, but carries everything a
// workload certificate must not: subject CN=admin, O=system:masters, a UPN otherName SAN, the extended key
// usages codeSigning and OCSPSigning (next to serverAuth and clientAuth), keyUsage keyCertSign and
// id-pkix-ocsp-nocheck.
func hostileCSR(t testing.TB, key crypto.Signer, id string) *x509.CertificateRequest {
	t.Helper()
	mustDER := func(v any, params string) []byte {
		der, err := asn1.MarshalWithParams(v, params)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	upnType := mustDER(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}, "")
	upn := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true,
		Bytes: append(upnType, mustDER("admin@corp.example", "utf8,explicit,tag:0")...)}
	uri := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(id)}
	// serverAuth and clientAuth too, so that the leaf still looks usable for mutual TLS.
	eku := func(n int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, n} }
	ekus := []asn1.ObjectIdentifier{eku(1), eku(2), eku(3), eku(9)} // serverAuth, clientAuth, codeSigning, OCSPSigning
	// digitalSignature (bit 0) and keyCertSign (bit 5)
	ku := asn1.BitString{Bytes: []byte{0x84}, BitLength: 6}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: mustDER([]asn1.RawValue{uri, upn}, "")},
			{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: mustDER(ekus, "")},
			{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Critical: true, Value: mustDER(ku, "")},
			{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}, Value: []byte{0x05, 0x00}},
		},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != id {
		t.Fatalf("the hostile CSR's URI SANs are %v, want only %s (the core would refuse it otherwise)", c.URIs, id)
	}
	return c
}

// TestSignVerbatimRefusesWhatVaultCopiesFromTheCSR: sign-verbatim copies the CSR's subject, SANs and
// extensions into the leaf. A CSR that names only its own SPIFFE ID passes every check meshca can make on the
// CSR's SANs, yet Vault would certify system:masters, a UPN and code signing; the backend refuses that leaf
// (ErrBadChain) and returns nothing.
func TestSignVerbatimRefusesWhatVaultCopiesFromTheCSR(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	key := newKey(t, "ecdsa")
	c := hostileCSR(t, key, testID)

	// The premise: Vault itself issues all of it.
	sec := s.Write(t, p.Mount+"/sign-verbatim/"+p.Role, map[string]any{
		"csr": pemCSR(c), "ttl": "1h", "format": "pem",
		"ext_key_usage": []string{"ServerAuth", "ClientAuth"}, "key_usage": []string{"DigitalSignature"},
	})
	leaf := vaulttest.ParsePEM(t, sec.Data["certificate"].(string))
	t.Logf("Vault's sign-verbatim leaf: subject %q, EKU %v %v, key usage %#x, %d extensions", leaf.Subject,
		leaf.ExtKeyUsage, leaf.UnknownExtKeyUsage, int(leaf.KeyUsage), len(leaf.Extensions))
	hasExt := func(oid asn1.ObjectIdentifier, content []byte) bool {
		return slices.ContainsFunc(leaf.Extensions, func(e pkix.Extension) bool {
			return e.Id.Equal(oid) && bytes.Contains(e.Value, content)
		})
	}
	upnOID, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3})
	for what, copied := range map[string]bool{
		"subject CN=admin, O=system:masters": leaf.Subject.CommonName == "admin" &&
			slices.Contains(leaf.Subject.Organization, "system:masters"),
		"the UPN otherName SAN": hasExt(asn1.ObjectIdentifier{2, 5, 29, 17}, upnOID),
		"extKeyUsage codeSigning and OCSPSigning": slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) &&
			slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning),
		"keyUsage keyCertSign": leaf.KeyUsage&x509.KeyUsageCertSign != 0,
		"id-pkix-ocsp-nocheck": hasExt(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}, nil),
	} {
		if !copied {
			t.Errorf("Vault's sign-verbatim leaf lacks %s; this test assumes Vault copies it from the CSR", what)
		}
	}

	cfg := config(t, s, p)
	cfg.Mode = vault.ModeSignVerbatim
	b := newBackend(t, cfg)
	u, _ := url.Parse(testID)
	resp, err := b.Sign(ctxTimeout(t, 10*time.Second), &backends.SignRequest{CSR: c, PublicKey: c.PublicKey,
		URIs: []*url.URL{u}, TTL: time.Hour})
	if !errors.Is(err, backends.ErrBadChain) || resp != nil {
		t.Fatalf("sign-verbatim of a hostile CSR: %v, %v; want ErrBadChain and no certificate", resp, err)
	}
	t.Logf("refused: %v", err)
}

// TestSignVerbatim: a CSR whose subject and SANs are exactly the request's is signed with serverAuth and
// clientAuth (the backend passes ext_key_usage, without which sign-verbatim issues no EKU); istio-agent's
// CSR, whose subject is O=<trust domain>, gets a leaf with that subject, which the backend refuses; a CSR for
// another identity is refused before sending.
func TestSignVerbatim(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	cfg := config(t, s, p)
	cfg.Mode = vault.ModeSignVerbatim
	b := newBackend(t, cfg)
	u, _ := url.Parse(testID)
	for _, kind := range []string{"ecdsa", "rsa"} {
		key := newKey(t, kind)
		c := newCSRWithSubject(t, key, pkix.Name{}, testID)
		resp, err := b.Sign(ctxTimeout(t, 10*time.Second), &backends.SignRequest{CSR: c, PublicKey: c.PublicKey,
			URIs: []*url.URL{u}, TTL: time.Hour})
		if err != nil {
			t.Fatalf("%s: Sign: %v", kind, err)
		}
		leaf := resp.Leaf()
		if len(leaf.ExtKeyUsage) != 2 || leaf.URIs[0].String() != testID {
			t.Fatalf("%s: leaf EKUs %v, URIs %v; want serverAuth+clientAuth and %s", kind, leaf.ExtKeyUsage,
				leaf.URIs, testID)
		}
		verifyChain(t, resp.Chain, p.Root)
	}

	resp, err := b.Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour))
	if !errors.Is(err, backends.ErrBadChain) || resp != nil {
		t.Fatalf("sign-verbatim of an istio-agent CSR (subject O=cluster.local): %v, %v; want ErrBadChain", resp, err)
	}

	key := newKey(t, "ecdsa")
	c := newCSR(t, key, "spiffe://cluster.local/ns/kube-system/sa/admin")
	_, err = b.Sign(ctxTimeout(t, 10*time.Second), &backends.SignRequest{CSR: c, PublicKey: c.PublicKey,
		URIs: []*url.URL{u}, TTL: time.Hour})
	if !errors.Is(err, backends.ErrRefused) {
		t.Fatalf("sign-verbatim with a CSR for another identity: %v, want ErrRefused", err)
	}
}

// TestRoleWithCSRSANsCannotIssueAForeignIdentity: a role with use_csr_sans=true takes the SANs from the CSR,
// not from meshca's request. A request for ns/default/sa/a whose CSR says ns/kube-system/sa/admin would get the
// admin identity; the backend refuses the leaf.
func TestRoleWithCSRSANsCannotIssueAForeignIdentity(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{Role: map[string]any{"use_csr_sans": true}})
	b := newBackend(t, config(t, s, p))
	const want, foreign = "spiffe://cluster.local/ns/default/sa/a", "spiffe://cluster.local/ns/kube-system/sa/admin"
	key := newKey(t, "ecdsa")
	c := newCSR(t, key, foreign)

	// The premise: Vault issues the CSR's identity although the request names another.
	sec := s.Write(t, p.Mount+"/sign/"+p.Role, map[string]any{"csr": pemCSR(c), "uri_sans": want, "ttl": "1h"})
	if leaf := vaulttest.ParsePEM(t, sec.Data["certificate"].(string)); len(leaf.URIs) != 1 ||
		leaf.URIs[0].String() != foreign {
		t.Fatalf("Vault with use_csr_sans issued URI SANs %v; this test assumes the CSR's %s", leaf.URIs, foreign)
	}

	u, _ := url.Parse(want)
	resp, err := b.Sign(ctxTimeout(t, 10*time.Second), &backends.SignRequest{CSR: c, PublicKey: c.PublicKey,
		URIs: []*url.URL{u}, TTL: time.Hour})
	if !errors.Is(err, backends.ErrBadChain) || resp != nil {
		t.Fatalf("Sign for %s with a CSR for %s under use_csr_sans: %v, %v; want ErrBadChain", want, foreign, resp, err)
	}
	t.Logf("refused: %v", err)
}

package ca_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// TestIssuerRefusesAnotherWorkloadsIdentity: a caller authenticated as default/sleep that asks for an identity
// in the right trust domain but another namespace or service account gets nothing, and no backend is asked.
func TestIssuerRefusesAnotherWorkloadsIdentity(t *testing.T) {
	dir, _ := catest.FileCA(t)
	f := &faulty{Backend: catest.FileBackend(t, dir, nil), t: t}
	i, dev := newIssuer(t, prometheus.NewRegistry(), ca.NamedBackend{Name: "file", Backend: f})
	tok, err := dev.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{
		"spiffe://cluster.local/ns/default/sa/admin",
		"spiffe://cluster.local/ns/kube-system/sa/sleep",
		"spiffe://cluster.local/ns/kube-system/sa/admin",
	} {
		t.Run(id, func(t *testing.T) {
			c, _ := catest.WorkloadCSR(t, id)
			calls := f.calls
			res, err := i.Issue(context.Background(), &ca.Request{Credentials: authn.Request{Token: tok}, CSR: c})
			if !errors.Is(err, ca.ErrIdentityMismatch) || res != nil {
				t.Fatalf("Issue issued %v, err %v; want ErrIdentityMismatch and nothing issued", res != nil, err)
			}
			if f.calls != calls {
				t.Fatal("the backend was asked to sign")
			}
		})
	}
	if _, err := i.Issue(context.Background(), request(t, dev)); err != nil {
		t.Fatalf("the caller's own identity: %v", err)
	}
}

// TestNameConstrainedChainsAreAlwaysFullyVerified: once a chain has verified, later leaves from it only get their
// own signature checked, except under a CA with name constraints, which constrain every leaf. Here the issuing CA
// excludes default.svc: a leaf without DNS names is fine, and a later one for sleep.default.svc, which policy
// allows and the file backend signs, must be refused by the core's check even though the chain verified before.
func TestNameConstrainedChainsAreAlwaysFullyVerified(t *testing.T) {
	dir := constrainedCA(t, "default.svc")
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i, err := ca.New(ca.Config{
		Backends:      []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, nil)}},
		Authenticator: j,
		Policy:        ca.Policy{TrustDomain: "cluster.local", DNSNameTemplates: []string{"{sa}.{ns}.svc"}},
		Logger:        catest.DiscardLogger(), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := dev.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(dns ...string) (*ca.Result, error) {
		c, _ := catest.CSR(t, catest.CSROptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/sleep"},
			DNS: dns})
		return i.Issue(context.Background(), &ca.Request{Credentials: authn.Request{Token: tok}, CSR: c})
	}
	for range 2 { // the second time, an unconstrained chain would come from the cache
		if _, err := issue(); err != nil {
			t.Fatalf("a leaf the constraints allow: %v", err)
		}
	}
	res, err := issue("sleep.default.svc")
	if !errors.Is(err, backends.ErrBadChain) || res != nil {
		t.Fatalf("Issue issued %v, err %v; want ErrBadChain for a leaf outside the issuing CA's name constraints",
			res != nil, err)
	}
}

// constrainedCA writes an Istio cacerts directory whose issuing CA excludes the DNS domain excluded.
func constrainedCA(t *testing.T, excluded string) string {
	t.Helper()
	now := time.Now()
	ca := func(cn string, parent *x509.Certificate, parentKey any, edit func(*x509.Certificate)) (
		*x509.Certificate, any) {
		key := catest.ECKey(t)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
		if edit != nil {
			edit(tmpl)
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, key
	}
	root, rootKey := ca("constrained test root", nil, nil, nil)
	inter, interKey := ca("constrained issuing CA", root, rootKey, func(c *x509.Certificate) {
		c.ExcludedDNSDomains = []string{excluded}
	})
	keyDER, err := x509.MarshalPKCS8PrivateKey(interKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := func(cs ...*x509.Certificate) (out []byte) {
		for _, c := range cs {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		return out
	}
	dir := filepath.Join(t.TempDir(), "cacerts")
	files := map[string][]byte{
		file.CACertFile:    certPEM(inter),
		file.CAKeyFile:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		file.CertChainFile: certPEM(inter, root),
		file.RootCertFile:  certPEM(root),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

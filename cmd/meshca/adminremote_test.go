package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl/admin"
	"github.com/meshca/meshca/internal/testpki"
)

// adminPKI writes a CA and a certificate it signs (key in PEM next to it) into dir: the certificate has the
// URI SAN uri (or none), the common name cn, and the IP SAN 127.0.0.1 when server is set.
type adminPKI struct {
	dir  string
	cert *x509.Certificate
	key  crypto.Signer
}

func newAdminCA(t *testing.T, dir, name string) *adminPKI {
	t.Helper()
	key := testpki.Key(t)
	now := time.Now()
	cert := testpki.Sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, key.Public(), key)
	writeFile(t, filepath.Join(dir, name+".pem"), string(testpki.CertsPEM(cert)))
	return &adminPKI{dir: dir, cert: cert, key: key}
}

func (ca *adminPKI) path(name string) string { return filepath.Join(ca.dir, name+".pem") }

// issue writes name.pem and name-key.pem: a certificate for uri (none when empty) and cn.
func (ca *adminPKI) issue(t *testing.T, name, uri, cn string, server bool) {
	t.Helper()
	key := testpki.Key(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	if uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	cert := testpki.Sign(t, tmpl, ca.cert, key.Public(), ca.key)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ca.path(name), string(testpki.CertsPEM(cert)))
	writeFile(t, ca.path(name+"-key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
}

const adminID = "spiffe://ops.example/ns/ops/sa/ca-admin"

// The remote admin listener serves meshca revoke over mTLS to the identities it allows and refuses every other
// client: no certificate, a certificate of another CA, or the right CA but another identity. The audit log
// names the caller. The loopback listener is unchanged.
func TestRemoteAdminListenerAllowsOnlyItsIdentities(t *testing.T) {
	dir := t.TempDir()
	cas := newAdminCA(t, dir, "admin-ca")
	cas.issue(t, "server", "", "meshca admin", true)
	cas.issue(t, "admin", adminID, "", false)
	cas.issue(t, "intruder", "spiffe://ops.example/ns/ops/sa/intruder", "", false)
	cas.issue(t, "alice", "", "alice", false)
	other := newAdminCA(t, dir, "other-ca")
	other.issue(t, "forged", adminID, "", false)

	config, _ := outputDirConfig(t, dir, dir)
	remoteAddr := fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t))
	raw, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(raw), "admin: {addr:", fmt.Sprintf(`admin: {remote: {addr: %q, certFile: %q, `+
		`keyFile: %q, clientCAFile: %q, allowedIdentities: [%q, alice]}, addr:`, remoteAddr, cas.path("server"),
		cas.path("server-key"), cas.path("admin-ca"), adminID), 1)
	writeFile(t, config, cfg)
	logs := &catest.SyncBuffer{}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(sctx, []string{"serve", "--config", config}, io.Discard, logs) }()
	t.Cleanup(func() { stop(); <-done })

	revoke := func(who string) error {
		t.Helper()
		pki := cas
		if who == "forged" {
			pki = other
		}
		c := &admin.Client{Addr: remoteAddr}
		if who != "" {
			tc, err := admin.ClientTLS(pki.path(who), pki.path(who+"-key"), cas.path("admin-ca"))
			if err != nil {
				t.Fatal(err)
			}
			if who == "forged" { // sent even though the server asks for certificates of its own CA
				cert := tc.Certificates[0]
				tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					return &cert, nil
				}
			}
			c.TLS = tc
		} else {
			tc, err := admin.ClientTLS(cas.path("admin"), cas.path("admin-key"), cas.path("admin-ca"))
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = nil
			c.TLS = tc
		}
		_, err := c.Revoke(context.Background(), admin.RevokeRequest{
			Identity: "spiffe://cluster.local/ns/default/sa/by-" + or(who, "nobody"), Reason: "keyCompromise"})
		return err
	}
	catest.Eventually(t, 20*time.Second, "the remote admin listener up", func() error { return revoke("admin") })
	tests := []struct {
		name, who string
		forbidden bool // refused with 403 rather than in the handshake
	}{
		{"a client without a certificate is refused in the handshake", "", false},
		{"a certificate of another CA naming the allowed identity is refused in the handshake", "forged", false},
		{"the right CA but an identity not allowed is refused with 403", "intruder", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := revoke(tt.who)
			if err == nil {
				t.Fatal("the revocation went through")
			}
			if errors.Is(err, admin.ErrForbidden) != tt.forbidden {
				t.Fatalf("revoke = %v; want ErrForbidden %v", err, tt.forbidden)
			}
		})
	}
	if err := revoke("alice"); err != nil {
		t.Fatalf("an allowed common name: %v", err)
	}

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"revoke", "--identity", "spiffe://cluster.local/ns/default/sa/cli",
		"--admin-addr", remoteAddr, "--admin-cert", cas.path("admin"), "--admin-key", cas.path("admin-key"),
		"--admin-ca", cas.path("admin-ca")}, &stdout, &stderr); code != 0 {
		t.Fatalf("meshca revoke over mTLS: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	log := logs.String()
	for _, want := range []string{`"caller":"mtls ` + adminID + `"`, `"caller":"mtls alice"`,
		`"identity":"spiffe://cluster.local/ns/default/sa/cli"`, "not in crl.admin.remote.allowedIdentities",
		"certificate signed by unknown authority", "client didn't provide a certificate"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s:\n%s", want, log)
		}
	}
	for _, refused := range []string{"by-nobody", "by-forged", "by-intruder"} {
		if strings.Contains(log, `"identity":"spiffe://cluster.local/ns/default/sa/`+refused) {
			t.Errorf("a refused client's revocation (%s) was carried out", refused)
		}
	}
}

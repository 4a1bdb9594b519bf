package ca_test

import (
	"context"
	"crypto/mldsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// nodeVerify is run by Node.js (OpenSSL 3.5+): for each certificate of the chain in argv[2] (a JSON list of
// PEMs, leaf first, root last) it checks the signature with its issuer's public key (the root with its own)
// and checkIssued; argv[3] is a PEM checked against argv[4]'s key, for the tampered cases.
const nodeVerify = `
const { X509Certificate } = require('node:crypto');
const fs = require('node:fs');
const chain = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')).map((p) => new X509Certificate(p));
const links = chain.map((c, i) => {
  const issuer = chain[Math.min(i + 1, chain.length - 1)];
  return { subject: c.subject, keyType: c.publicKey.asymmetricKeyType,
    verified: c.verify(issuer.publicKey), issued: c.checkIssued(issuer) };
});
const odd = JSON.parse(fs.readFileSync(process.argv[3], 'utf8')).map(([cert, key]) => {
  try { return new X509Certificate(cert).verify(new X509Certificate(key).publicKey); }
  catch (e) { return false; }
});
console.log(JSON.stringify({ openssl: process.versions.openssl, node: process.version, links, odd }));
`

// An ML-DSA-65 chain meshca issues (leaf, ML-DSA issuing CA, ML-DSA root) verifies link by link with OpenSSL
// (3.5+, bundled in Node.js: scripts/get-node.sh, MESHCA_NODE), an implementation independent of Go's; a
// certificate with one flipped signature bit, or checked against the wrong issuer, does not.
func TestOpenSSLVerifiesMLDSAChains(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Node.js with OpenSSL 3.5+: skipped under -short")
	}
	node := os.Getenv("MESHCA_NODE")
	if node == "" {
		t.Skip("MESHCA_NODE is not set: eval \"$(bash scripts/testbins.sh)\" installs Node.js (scripts/get-node.sh)")
	}
	chain := issueMLDSA(t)
	if len(chain) != 3 {
		t.Fatalf("chain of %d certificates, want leaf, issuing CA and root", len(chain))
	}
	pems := make([]string, len(chain))
	for n, c := range chain {
		pems[n] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	tampered := append([]byte(nil), chain[0].Raw...)
	tampered[len(tampered)-1] ^= 1 // the last byte of the signature
	odd := [][2]string{
		{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tampered})), pems[1]},
		{pems[0], pems[2]}, // the leaf against the root's key instead of its issuer's
	}
	dir := t.TempDir()
	write := func(name string, v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	script := filepath.Join(dir, "verify.js")
	if err := os.WriteFile(script, []byte(nodeVerify), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, write("chain.json", pems), write("odd.json", odd))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s (needs OpenSSL 3.5+ for ML-DSA): %v\n%s", node, err, stderr.String())
	}
	var got struct {
		OpenSSL, Node string
		Links         []struct {
			Subject, KeyType string
			Verified, Issued bool
		}
		Odd []bool
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node's answer %q: %v", out, err)
	}
	t.Logf("Node.js %s, OpenSSL %s", got.Node, got.OpenSSL)
	for n, l := range got.Links {
		if !l.Verified || !l.Issued || l.KeyType != "ml-dsa-65" {
			t.Errorf("link %d (%s): key %s, signature verified %v, checkIssued %v; want an ML-DSA-65 link "+
				"that verifies", n, l.Subject, l.KeyType, l.Verified, l.Issued)
		}
	}
	if len(got.Links) != len(chain) {
		t.Errorf("OpenSSL checked %d links, want %d", len(got.Links), len(chain))
	}
	for n, ok := range got.Odd {
		if ok {
			t.Errorf("OpenSSL verified %s", []string{"a leaf with a flipped signature bit",
				"the leaf with the root's key"}[n])
		}
	}
}

// issueMLDSA returns the chain meshca's issuer gives an ML-DSA-65 CSR (file backend with mldsaDir).
func issueMLDSA(t *testing.T) []*x509.Certificate {
	t.Helper()
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: catest.MLDSAFileBackend(t, nil)}},
		Authenticator: j, Policy: ca.Policy{TrustDomain: "cluster.local", MLDSA: true},
		Logger: catest.DiscardLogger(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	key, err := mldsa.GenerateKey(mldsa.MLDSA65())
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := catest.CSR(t, catest.CSROptions{Key: key, URIs: []string{"spiffe://cluster.local/ns/default/sa/sleep"}})
	tok, err := dev.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := i.Issue(context.Background(), &ca.Request{Credentials: authn.Request{Token: tok}, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	return res.Chain
}

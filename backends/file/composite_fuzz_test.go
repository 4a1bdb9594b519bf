package file

import (
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
)

// FuzzParseCompositeAuthority: the composite cacerts loader never panics on arbitrary ca-cert.pem and
// ca-key.pem, and what it accepts holds the key of its CA certificate and a chain ending in one of its roots.
func FuzzParseCompositeAuthority(f *testing.F) {
	g, err := Generate(GenerateOptions{NewKey: NewCompositeKey})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(g.CertPEM, g.KeyPEM)
	f.Add(g.RootPEM, g.KeyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"), []byte{})
	f.Fuzz(func(t *testing.T, cert, key []byte) {
		a, err := parseAuthority(map[string][]byte{CACertFile: cert, CAKeyFile: key, RootCertFile: g.RootPEM},
			time.Now())
		if err != nil {
			return
		}
		if !backends.SameKey(a.signer.Public(), backends.CertificateKey(a.cert)) {
			t.Fatal("accepted a CA whose key is not its certificate's")
		}
		if last := a.chain[len(a.chain)-1]; !last.Equal(g.Root) {
			t.Fatal("accepted a chain that does not end in root-cert.pem")
		}
	})
}

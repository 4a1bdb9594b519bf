package trustbundle_test

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/testpki"
	"github.com/meshca/meshca/trustbundle"
)

// newRoot returns a fresh self-signed root CA.
func newRoot(tb testing.TB) *x509.Certificate {
	tb.Helper()
	g, err := file.Generate(file.GenerateOptions{Organization: "trustbundle-test"})
	if err != nil {
		tb.Fatal(err)
	}
	return g.Root
}

// newLeaf returns a certificate without the CA bit, issued by a fresh root.
func newLeaf(tb testing.TB) *x509.Certificate {
	tb.Helper()
	g, err := file.Generate(file.GenerateOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	key := catest.ECKey(tb)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true}
	return testpki.Sign(tb, tmpl, g.Root, key.Public(), g.RootKey)
}

func decode(tb testing.TB, bundle []byte) []*x509.Certificate {
	tb.Helper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, bundle = pem.Decode(bundle)
		if b == nil {
			return out
		}
		if b.Type != "CERTIFICATE" || len(b.Headers) != 0 {
			tb.Fatalf("bundle holds a %q block with headers %v", b.Type, b.Headers)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, c)
	}
}

func TestEncode(t *testing.T) {
	a, b := newRoot(t), newRoot(t)
	leaf := newLeaf(t)
	tests := []struct {
		name    string
		roots   []*x509.Certificate
		want    []*x509.Certificate // in any order
		wantErr error
	}{
		{name: "one root is published as is", roots: []*x509.Certificate{a}, want: []*x509.Certificate{a}},
		{
			name:  "two roots during a rotation are both published",
			roots: []*x509.Certificate{a, b},
			want:  []*x509.Certificate{a, b},
		},
		{
			name:  "a duplicate root is published once",
			roots: []*x509.Certificate{a, b, a},
			want:  []*x509.Certificate{a, b},
		},
		{name: "no roots are refused", roots: nil, wantErr: trustbundle.ErrInvalidRoots},
		{
			name:    "a certificate without the CA bit is refused with the whole set",
			roots:   []*x509.Certificate{a, leaf},
			wantErr: trustbundle.ErrInvalidRoots,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := trustbundle.Encode(tt.roots)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Encode: error %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			certs := decode(t, got)
			if len(certs) != len(tt.want) {
				t.Fatalf("bundle holds %d certificates, want %d", len(certs), len(tt.want))
			}
			for _, w := range tt.want {
				found := false
				for _, c := range certs {
					found = found || c.Equal(w)
				}
				if !found {
					t.Errorf("bundle lacks %s", w.Subject)
				}
			}
		})
	}
}

func TestEncodeOrderDoesNotDependOnTheSource(t *testing.T) {
	a, b, c := newRoot(t), newRoot(t), newRoot(t)
	first, err := trustbundle.Encode([]*x509.Certificate{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	for _, perm := range [][]*x509.Certificate{{c, b, a}, {b, a, c}, {c, a, b, a}} {
		got, err := trustbundle.Encode(perm)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, first) {
			t.Fatal("the same roots in another order encode differently; every reorder would rewrite every object")
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  trustbundle.Config
		ok   bool
	}{
		{name: "a minimal configuration is valid", cfg: trustbundle.Config{LeaseNamespace: "meshca"}, ok: true},
		{
			name: "a signer name without a path is refused",
			cfg:  trustbundle.Config{LeaseNamespace: "meshca", SignerName: "meshca.io"},
		},
		{
			name: "a bad namespace selector is refused",
			cfg:  trustbundle.Config{LeaseNamespace: "meshca", NamespaceSelector: "a in ("},
		},
		{name: "a lease namespace is required", cfg: trustbundle.Config{}},
		{
			name: "disabling both targets is refused",
			cfg: trustbundle.Config{
				LeaseNamespace:            "meshca",
				DisableConfigMaps:         true,
				DisableClusterTrustBundle: true,
			},
		},
		{
			name: "a renew deadline past the lease duration is refused",
			cfg: trustbundle.Config{
				LeaseNamespace: "meshca",
				LeaseDuration:  time.Second,
				RenewDeadline:  2 * time.Second,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Kube = &rest.Config{Host: "https://127.0.0.1:6443"}
			cfg.Source = trustbundle.SourceFunc(nil)
			if err := cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

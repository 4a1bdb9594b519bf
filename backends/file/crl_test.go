package file_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
)

func crlPEM(t *testing.T, ca *x509.Certificate, key crypto.Signer, revoked ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(24 * time.Hour)}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// The cacerts ca-crl.pem is accepted when each CRL in it is signed by a CA of the served chain, refused whole
// otherwise; unlike istiod (istio#61075), a refused ca-crl.pem never stops the CA from loading or signing.
func TestCACRLFile(t *testing.T) {
	g := generate(t)
	other := generate(t) // same names, other keys
	interCRL := crlPEM(t, g.Intermediate, g.IntermediateKey)
	rootCRL := crlPEM(t, g.Root, g.RootKey, g.Intermediate.SerialNumber)
	tests := []struct {
		name    string
		content []byte // nil: no ca-crl.pem
		want    int    // CRLs accepted
		wantErr error
	}{
		{name: "no ca-crl.pem is no CRL"},
		{name: "a blank ca-crl.pem is no CRL", content: []byte("\n  \n")},
		{name: "the signing CA's CRL is accepted", content: interCRL, want: 1},
		{name: "a root-signed CRL alone is accepted (istio#61075 drops it)", content: rootCRL, want: 1},
		{name: "a CRL for each CA of the chain is accepted", content: append(bytes.Clone(interCRL), rootCRL...),
			want: 2},
		{name: "a CRL under the root's name signed by another key is refused",
			content: crlPEM(t, other.Root, other.RootKey), wantErr: file.ErrInvalidCRL},
		{name: "one foreign CRL refuses the whole file", content: append(bytes.Clone(interCRL),
			crlPEM(t, other.Intermediate, other.IntermediateKey)...), wantErr: file.ErrInvalidCRL},
		{name: "a certificate instead of a CRL is refused", content: g.RootPEM, wantErr: file.ErrInvalidCRL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeDir(t, g)
			if tt.content != nil {
				if err := os.WriteFile(filepath.Join(dir, file.CRLFile), tt.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			reg := prometheus.NewRegistry()
			b := catest.FileBackend(t, dir, reg)
			got, err := b.CRLBundle(context.Background())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CRLBundle: %v, want %v", err, tt.wantErr)
			}
			lists, perr := crl.ParseBundle(got)
			if perr != nil || len(lists) != tt.want {
				t.Fatalf("CRLBundle gave %d CRLs (%v), want %d", len(lists), perr, tt.want)
			}
			if _, err := b.Sign(context.Background(), &backends.SignRequest{PublicKey: catest.ECKey(t).Public(),
				URIs: []*url.URL{mustURL(t, "spiffe://cluster.local/ns/a/sa/b")}, TTL: time.Hour}); err != nil {
				t.Fatalf("the CA does not sign: %v", err)
			}
			refused := testutil.ToFloat64(reloadCounter(t, reg, "crl_refused"))
			if want := map[bool]float64{true: 1, false: 0}[tt.wantErr != nil]; refused != want {
				t.Errorf("meshca_file_ca_reloads_total{result=crl_refused} = %v, want %v", refused, want)
			}
		})
	}
}

// A blank ca-crl.pem written over a CRL withdraws it (istiod keeps the old one, istio#61073), and a new CA
// set with a bad ca-crl.pem still rotates the CA (istio#61075).
func TestCACRLFileClearsAndNeverBlocksARotation(t *testing.T) {
	g := generate(t)
	dir := writeDir(t, g)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(file.CRLFile, crlPEM(t, g.Intermediate, g.IntermediateKey))
	b := catest.FileBackend(t, dir, nil)
	write(file.CRLFile, nil)
	if _, err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.CRLBundle(context.Background()); err != nil || len(got) != 0 {
		t.Fatalf("after blanking ca-crl.pem: %d bytes, %v; want none", len(got), err)
	}
	next := generateWith(t, file.GenerateOptions{Root: g.Root, RootKey: g.RootKey})
	write(file.CACertFile, next.CertPEM)
	write(file.CAKeyFile, next.KeyPEM)
	write(file.CertChainFile, append(bytes.Clone(next.CertPEM), next.RootPEM...))
	write(file.CRLFile, crlPEM(t, g.Intermediate, g.IntermediateKey)) // the old CA's CRL: not of the new chain
	// The backend's own 50 ms poll may have activated the new files first, so Reload may report no change.
	if _, err := b.Reload(); err != nil {
		t.Fatalf("Reload: %v; want the new CA active despite its ca-crl.pem", err)
	}
	if chain, _ := b.CAChain(context.Background()); !chain[0].Equal(next.Intermediate) {
		t.Fatal("the new CA is not active")
	}
	if _, err := b.CRLBundle(context.Background()); !errors.Is(err, file.ErrInvalidCRL) {
		t.Fatalf("CRLBundle: %v, want ErrInvalidCRL", err)
	}
}

func reloadCounter(t *testing.T, reg *prometheus.Registry, result string) prometheus.Collector {
	t.Helper()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "meshca_file_ca_reloads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == result {
				c.Add(m.GetCounter().GetValue())
			}
		}
	}
	return c
}

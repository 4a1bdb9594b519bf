package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
)

// A revoked client certificate cannot renew (issue #15, item 2): revoked in the revocation state while meshca
// is down, it is refused with Unauthenticated after the restart, while a certificate nobody revoked renews.
func TestRevokedClientCertDoesNotRenew(t *testing.T) {
	dir := t.TempDir()
	d := startDevIn(t, dir)
	d.waitReady(t)
	victim, err := d.request(t, "default", "sleep", nil)
	if err != nil {
		t.Fatalf("CreateCertificate with a token: %v\nlog:\n%s", err, d.stderr.String())
	}
	other, err := d.request(t, "default", "other", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.request(t, "default", "sleep", victim); err != nil {
		t.Fatalf("renewal with an unrevoked certificate: %v", err)
	}
	d.shutdown(t)

	store, err := crl.OpenFile(filepath.Join(dir, "revocations.json"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := crl.NewRegistry(context.Background(), crl.RegistryConfig{Store: store,
		Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Revoke(context.Background(), crl.RevokeRequest{Certificate: victim.chain[0],
		Reason: crl.KeyCompromise}); err != nil {
		t.Fatal(err)
	}
	store.Close()

	d = startDevIn(t, dir)
	defer d.shutdown(t)
	d.waitReady(t)
	if _, err := d.request(t, "default", "sleep", victim); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("renewal with a revoked certificate: %v, want Unauthenticated", err)
	}
	if _, err := d.request(t, "default", "other", other); err != nil {
		t.Fatalf("renewal with an unrevoked certificate after the restart: %v", err)
	}
}

// make run's serve --dev publishes a current CRL for every CA of its chain, the intermediate's signed by
// meshca and the root's from the ca-crl.pem meshca init wrote: what Envoy's CRL_CHECK_ALL needs.
func TestDevServesACRLForEveryCAOfTheChain(t *testing.T) {
	d := startDev(t)
	defer d.shutdown(t)
	d.waitReady(t)
	code, body := d.get(t, "/crl.pem")
	if code != http.StatusOK {
		t.Fatalf("/crl.pem: %d %s", code, body)
	}
	lists, err := crl.ParseBundle(body)
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(filepath.Join(d.dir, "cacerts", "cert-chain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := backends.ParseCertificates(g)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || len(lists) != 2 {
		t.Fatalf("%d CAs, %d CRLs; want 2 and 2", len(chain), len(lists))
	}
	if _, err := crl.Check(crl.CAs(chain), lists, time.Now()); err != nil {
		t.Fatalf("the published CRLs do not cover the chain: %v", err)
	}
	code, der := d.get(t, "/crl")
	if code != http.StatusOK {
		t.Fatalf("/crl: %d", code)
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil || !crl.Matches(l, chain[0]) {
		t.Fatalf("/crl is not the intermediate's CRL: %v", err)
	}
}

// A root CRL past its nextUpdate is not served as if it were good: /crl.pem answers 503, the gauges show it,
// and the log says which CA lacks a current CRL.
func TestAStaleCRLIsNotServedSilently(t *testing.T) {
	dir := t.TempDir()
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WriteDir(filepath.Join(dir, "cacerts")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(3),
		ThisUpdate: now.Add(-48 * time.Hour), NextUpdate: now.Add(-time.Hour)}, g.Root, g.RootKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "cacerts", file.CRLFile), string(crl.EncodeBundle(der)))
	d := startDevIn(t, dir)
	defer d.shutdown(t)
	d.waitReady(t)
	if code, body := d.get(t, "/crl.pem"); code != http.StatusServiceUnavailable ||
		!strings.Contains(string(body), crl.ErrStaleCRL.Error()) {
		t.Fatalf("/crl.pem: %d %q; want 503 naming the stale CRL", code, body)
	}
	_, metrics := d.get(t, "/metrics")
	root := string(crl.IDOf(g.Root))
	for _, want := range []string{"meshca_crl_coverage_complete 0",
		fmt.Sprintf(`meshca_crl_next_update_timestamp_seconds{ca=%q} %g`, root, float64(now.Add(-time.Hour).Unix()))} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !regexp.MustCompile(`meshca_crl_publish_errors_total{target="coverage"} [1-9]`).Match(metrics) {
		t.Error("/metrics does not count the coverage error")
	}
	if log := d.stderr.String(); !strings.Contains(log, "not every CA of the served chains has a valid CRL") ||
		!strings.Contains(log, crl.ErrStaleCRL.Error()) {
		t.Errorf("the log does not report the stale CRL:\n%s", log)
	}
}

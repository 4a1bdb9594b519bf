package ca_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
)

func servingCSR(t *testing.T, dns ...string) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: dns}, catest.ECKey(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIssueServing(t *testing.T) {
	dir, _ := catest.FileCA(t)
	var audit bytes.Buffer
	reg := prometheus.NewRegistry()
	i, err := ca.New(ca.Config{
		Backends:      []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, nil)}},
		Authenticator: authn.Chain{}, Policy: ca.Policy{TrustDomain: "cluster.local"},
		Logger: catest.DiscardLogger(), Audit: slog.New(slog.NewJSONHandler(&audit, nil)), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("meshca's own identity and names, audited, not counted as a workload issuance", func(t *testing.T) {
		audit.Reset()
		res, err := i.IssueServing(ctx, &ca.ServingRequest{Namespace: "istio-system", ServiceAccount: "meshca",
			CSR: servingCSR(t, "meshca.istio-system.svc"), DNSNames: []string{"meshca.istio-system.svc"},
			TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		leaf := res.Chain[0]
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/istio-system/sa/meshca" {
			t.Errorf("URIs = %v", leaf.URIs)
		}
		if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "meshca.istio-system.svc" {
			t.Errorf("DNSNames = %v", leaf.DNSNames)
		}
		if !strings.Contains(audit.String(), `"msg":"serving certificate issued"`) ||
			!strings.Contains(audit.String(), `"authn":"self"`) {
			t.Errorf("audit record missing: %s", audit.String())
		}
		n := testutil.ToFloat64(prometheusCounterSum(t, reg, "meshca_certificates_issued_total"))
		if n != 0 {
			t.Errorf("meshca_certificates_issued_total = %v, want 0", n)
		}
	})
	t.Run("an invalid own identity is refused and audited", func(t *testing.T) {
		audit.Reset()
		_, err := i.IssueServing(ctx, &ca.ServingRequest{Namespace: "Not_A_Namespace", ServiceAccount: "meshca",
			CSR: servingCSR(t), TTL: time.Hour})
		if !errors.Is(err, ca.ErrInvalidRequest) {
			t.Fatalf("err = %v, want ErrInvalidRequest", err)
		}
		if !strings.Contains(audit.String(), "serving certificate not issued") {
			t.Errorf("refusal not audited: %s", audit.String())
		}
	})
	t.Run("a CSR whose signature does not verify is refused", func(t *testing.T) {
		c := servingCSR(t)
		c.Signature[len(c.Signature)-1] ^= 1
		if _, err := i.IssueServing(ctx, &ca.ServingRequest{Namespace: "istio-system", ServiceAccount: "meshca",
			CSR: c, TTL: time.Hour}); err == nil {
			t.Fatal("issued for a CSR with a broken signature")
		}
	})
}

// prometheusCounterSum sums every series of a counter family into one gauge, for testutil.ToFloat64.
func prometheusCounterSum(t *testing.T, reg *prometheus.Registry, name string) prometheus.Gauge {
	t.Helper()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sum"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				g.Add(m.GetCounter().GetValue())
			}
		}
	}
	return g
}

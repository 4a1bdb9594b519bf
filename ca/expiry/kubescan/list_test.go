package kubescan_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/ca/expiry/internal/certtest"
	"github.com/meshca/meshca/ca/expiry/kubescan"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var update = flag.Bool("update", false, "rewrite testdata/cluster.txt from the current output")

// goldenNamespace has a fixed name, so the golden table does not change between runs; each test binary has
// its own cluster.
const goldenNamespace = "inspect-golden"

// meshca inspect on a cluster: the report of what List reads (labelled Secrets, cacerts, meshca's ConfigMaps)
// is the checked-in golden table, with the exit status of an expiring workload certificate.
func TestListGolden(t *testing.T) {
	k := catest.SharedKube(t)
	ctx := context.Background()
	_, err := k.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: goldenNamespace}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Client.CoreV1().Namespaces().Delete(ctx, goldenNamespace, metav1.DeleteOptions{}) })
	t0, day := certtest.T0, certtest.Day
	p := certtest.NewPKI(t)
	leaf := certtest.Make(t, certtest.Spec{Serial: 0xbeef, NotBefore: t0.Add(-20 * time.Hour), Life: day,
		Parent: p.Inter, SPIFFE: "spiffe://cluster.local/ns/inspect-golden/sa/default"})
	web := certtest.Make(t, certtest.Spec{CN: "web.example.com", Serial: 0xcafe, NotBefore: t0.Add(-day),
		Life: 90 * day, Parent: p.Inter})
	objs := []any{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cacerts"}, Data: map[string][]byte{
			"ca-cert.pem": certtest.CertsPEM(p.Inter), "ca-key.pem": certtest.KeyPEM(t, p.Inter.Key),
			"cert-chain.pem": certtest.CertsPEM(p.Inter, p.Root), "root-cert.pem": certtest.CertsPEM(p.Root)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "istio.default",
			Labels: map[string]string{kubescan.KeyAndCertLabel: "true"}}, Data: map[string][]byte{
			"cert-chain.pem": certtest.CertsPEM(leaf, p.Inter), "key.pem": certtest.KeyPEM(t, leaf.Key),
			"root-cert.pem": certtest.CertsPEM(p.Root)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-tls",
			Labels: map[string]string{"meshca.io/expiry-scan": "true"}}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": certtest.CertsPEM(web, p.Inter), "tls.key": certtest.KeyPEM(t, web.Key),
				"ca.crt": certtest.CertsPEM(p.Root)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "not-scanned"}, Data: map[string][]byte{
			"tls.crt": certtest.CertsPEM(web)}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: kubescan.RootCertConfigMap},
			Data: map[string]string{"root-cert.pem": string(certtest.CertsPEM(p.Root))}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: kubescan.CRLConfigMap}, Data: map[string]string{
			"ca-crl.pem": string(certtest.CRLPEM(t, p.Inter, nil, 12, t0.Add(-6*time.Hour), 24*time.Hour, 7))}},
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Secret:
			_, err = k.Client.CoreV1().Secrets(goldenNamespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ConfigMap:
			_, err = k.Client.CoreV1().ConfigMaps(goldenNamespace).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	sets, err := kubescan.List(ctx, kubescan.Config{Client: k.Client, Namespace: goldenNamespace,
		CacertsSecret: goldenNamespace + "/cacerts"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := expiry.Inspect(ctx, expiry.InspectArgs{Sets: sets, Now: t0}, &out)
	if code != expiry.ExitExpiring {
		t.Errorf("exit status %d, want %d (the workload certificate expires within 7 days)", code, expiry.ExitExpiring)
	}
	if bytes.Contains(out.Bytes(), []byte("not-scanned")) {
		t.Error("a Secret that did not opt in was listed")
	}
	golden := filepath.Join("testdata", "cluster.txt")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", golden, &out, want)
	}
}

// A caller without read access still gets a report: what it may not list is shown as unreadable, and the
// exit status says something is wrong.
func TestListReportsWhatItCannotRead(t *testing.T) {
	k := catest.SharedKube(t)
	cfg := rest.CopyConfig(k.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "nobody"}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sets, err := kubescan.List(context.Background(), kubescan.Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 5 {
		t.Fatalf("%d sets, want one unreadable set per list (5)", len(sets))
	}
	for _, s := range sets {
		if len(s.Problems) != 1 || s.Problems[0].Kind != expiry.ProblemUnreadable {
			t.Errorf("%s: %+v, want one unreadable problem", s.Source, s.Problems)
		}
	}
	var out bytes.Buffer
	if code := expiry.Inspect(context.Background(), expiry.InspectArgs{Sets: sets}, &out); code != expiry.ExitProblem {
		t.Errorf("exit status %d, want %d\n%s", code, expiry.ExitProblem, &out)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  kubescan.Config
		ok   bool
	}{
		{"the zero value takes the defaults", kubescan.Config{}, true},
		{"scanning no cacerts and no opt-in Secrets", kubescan.Config{CacertsSecret: "-", OptInSelector: "-"}, true},
		{"a cacerts reference without a namespace", kubescan.Config{CacertsSecret: "cacerts"}, false},
		{"a selector that does not parse", kubescan.Config{OptInSelector: "a in (b"}, false},
		{"a namespace that is not a DNS label", kubescan.Config{Namespace: "Not_A_Label"}, false},
		{"a negative sync timeout", kubescan.Config{SyncTimeout: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate: %v", err)
			}
		})
	}
	if _, err := kubescan.New(kubescan.Config{}); err == nil {
		t.Error("New without a client succeeded")
	}
}

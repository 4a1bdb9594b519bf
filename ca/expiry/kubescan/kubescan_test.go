package kubescan_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/ca/expiry/internal/certtest"
	"github.com/meshca/meshca/ca/expiry/kubescan"
	"github.com/meshca/meshca/manifests"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }

// meshcaClient returns a client acting as meshca's service account with the base RBAC and the expiry
// scanner component applied, so a permission the scanner lacks fails the test.
func meshcaClient(t *testing.T, k *catest.Kube) kubernetes.Interface {
	t.Helper()
	cfg := catest.MeshcaRBAC(t, k)
	objs, err := catest.DecodeYAML(manifests.ExpiryScannerRBAC)
	if err != nil {
		t.Fatal(err)
	}
	if err := catest.Apply(context.Background(), k.Config, objs, catest.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// series returns the label sets of a metric whose labels contain every one of want ("name=value").
func series(t *testing.T, reg *prometheus.Registry, metric string, want ...string) []string {
	t.Helper()
	var out []string
	for labels := range certtest.Gather(t, reg, metric) {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(","+labels+",", ","+w+",")
		}
		if ok {
			out = append(out, labels)
		}
	}
	return out
}

// The scanner's gauges follow Secrets and ConfigMaps in the real API server within a second of each create,
// update, label change and delete, acting with exactly the permissions the manifests grant meshca.
func TestScannerFollowsTheCluster(t *testing.T) {
	k := catest.SharedKube(t)
	client := meshcaClient(t, k)
	admin := k.Client
	ns := k.Namespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	reg := prometheus.NewRegistry()
	inv, err := expiry.NewInventory(expiry.InventoryConfig{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s, err := kubescan.New(kubescan.Config{Client: client, Inventory: inv, Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	p := certtest.NewPKI(t)
	leaf := func(serial int64) *certtest.Issued {
		return certtest.Make(t, certtest.Spec{Serial: serial, NotBefore: now, Life: 24 * time.Hour, Parent: p.Inter,
			SPIFFE: "spiffe://cluster.local/ns/" + ns + "/sa/default"})
	}
	// follow waits for the set of matching series to be exactly want, and requires it within a second.
	follow := func(what string, metric string, want []string, match ...string) {
		t.Helper()
		took := catest.Eventually(t, 10*time.Second, what, func() error {
			got := series(t, reg, metric, match...)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				return fmt.Errorf("series %v, want %v", got, want)
			}
			return nil
		})
		t.Logf("%s: %s", what, took)
		if took > time.Second {
			t.Errorf("%s took %s, more than a second", what, took)
		}
	}
	certMetric := "meshca_scanned_certificate_expiry_timestamp_seconds"
	leafSeries := func(name string, serial int64) []string {
		return []string{fmt.Sprintf("ca=false,key=cert-chain.pem,name=%s,namespace=%s,serial=%x,source=secret,"+
			"subject=spiffe://cluster.local/ns/%s/sa/default", name, ns, serial, ns)}
	}
	secrets := admin.CoreV1().Secrets(ns)
	l1 := leaf(0x101)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "istio.default",
		Labels: map[string]string{kubescan.KeyAndCertLabel: "true"}}, Data: map[string][]byte{
		"cert-chain.pem": certtest.CertsPEM(l1, p.Inter), "key.pem": certtest.KeyPEM(t, l1.Key),
		"root-cert.pem": certtest.CertsPEM(p.Root)}}
	if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	follow("a created key-and-cert Secret", certMetric, leafSeries("istio.default", 0x101),
		"name=istio.default", "key=cert-chain.pem", "ca=false")

	l2 := leaf(0x102)
	sec.Data["cert-chain.pem"], sec.Data["key.pem"] = certtest.CertsPEM(l2, p.Inter), certtest.KeyPEM(t, l1.Key)
	if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	follow("an updated Secret", certMetric, leafSeries("istio.default", 0x102), "name=istio.default",
		"key=cert-chain.pem", "ca=false")
	follow("its key no longer matching", "meshca_scanned_problems", []string{
		fmt.Sprintf("key=cert-chain.pem,name=istio.default,namespace=%s,problem=key_mismatch,source=secret", ns)},
		"namespace="+ns)

	l3 := leaf(0x103)
	tlsSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": certtest.CertsPEM(l3, p.Inter), "tls.key": certtest.KeyPEM(t, l3.Key)}}
	if _, err := secrets.Create(ctx, tlsSecret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tlsSeries := []string{fmt.Sprintf("ca=false,key=tls.crt,name=web-tls,namespace=%s,serial=103,source=secret,"+
		"subject=spiffe://cluster.local/ns/%s/sa/default", ns, ns)}
	tlsSecret.Labels = map[string]string{"meshca.io/expiry-scan": "true"}
	if _, err := secrets.Update(ctx, tlsSecret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	follow("a kubernetes.io/tls Secret that opts in", certMetric, tlsSeries, "name=web-tls", "ca=false")
	tlsSecret.Labels = nil
	if _, err := secrets.Update(ctx, tlsSecret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	follow("the same Secret opting out", certMetric, nil, "name=web-tls")

	cms := admin.CoreV1().ConfigMaps(ns)
	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: kubescan.RootCertConfigMap},
		Data: map[string]string{"root-cert.pem": string(certtest.CertsPEM(p.Root))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	follow("the istio-ca-root-cert ConfigMap", certMetric, []string{fmt.Sprintf("ca=true,key=root-cert.pem,"+
		"name=istio-ca-root-cert,namespace=%s,serial=1,source=configmap,subject=%s", ns, p.Root.Cert.Subject)},
		"source=configmap", "namespace="+ns)
	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: kubescan.CRLConfigMap},
		Data: map[string]string{"ca-crl.pem": string(certtest.CRLPEM(t, p.Inter, nil, 3, now, 24*time.Hour))}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	follow("the istio-ca-crl ConfigMap", "meshca_scanned_crl_next_update_timestamp_seconds", []string{
		fmt.Sprintf("issuer=%s,key=ca-crl.pem,name=istio-ca-crl,namespace=%s,source=configmap", p.Inter.Cert.Subject,
			ns)}, "namespace="+ns)
	if err := cms.Delete(ctx, kubescan.CRLConfigMap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	follow("the deleted CRL ConfigMap", "meshca_scanned_crl_next_update_timestamp_seconds", nil, "namespace="+ns)

	if err := secrets.Delete(ctx, "istio.default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	follow("a deleted Secret", certMetric, nil, "name=istio.default")

	// An unrelated Secret is never read; the cacerts Secret in istio-system is.
	_, err = secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unrelated"},
		Data: map[string][]byte{"ca.crt": certtest.CertsPEM(p.Root)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cacerts := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cacerts", Namespace: catest.MeshcaNamespace},
		Data: map[string][]byte{
			"ca-cert.pem":    certtest.CertsPEM(p.Inter),
			"ca-key.pem":     certtest.KeyPEM(t, p.Inter.Key),
			"root-cert.pem":  certtest.CertsPEM(p.Root),
			"cert-chain.pem": certtest.CertsPEM(p.Inter, p.Root),
		}}
	meshcaSecrets := admin.CoreV1().Secrets(catest.MeshcaNamespace)
	if _, err := meshcaSecrets.Create(ctx, cacerts, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if _, err := meshcaSecrets.Update(ctx, cacerts, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	follow("the cacerts Secret", certMetric, []string{fmt.Sprintf("ca=true,key=ca-cert.pem,name=cacerts,"+
		"namespace=istio-system,serial=2,source=secret,subject=%s", p.Inter.Cert.Subject)}, "name=cacerts",
		"key=ca-cert.pem")
	if got := series(t, reg, certMetric, "name=unrelated"); len(got) > 0 {
		t.Errorf("an unlabelled Secret was scanned: %v", got)
	}
}

package kubepublish_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
	"github.com/meshca/meshca/crl/internal/kubetest"
	"github.com/meshca/meshca/crl/kubepublish"
)

func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }

// The permissions the publisher needs (docs/revocation.md lists them for the manifests).
var (
	clusterRules = []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{kubepublish.ConfigMapName},
			Verbs: []string{"get", "list", "watch", "update"}},
	}
	leaseRules = []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
			ResourceNames: []string{"meshca-crl"}, Verbs: []string{"get", "update"}},
	}
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type fixture struct {
	k        *catest.Kube
	leaseNS  string
	rc       *rest.Config
	pki      *crltest.PKI
	rootFile string
	reg      *crl.Registry
	src      *crl.Publisher
}

// newFixture runs a real crl.Publisher: the intermediate's CRL built and signed here, the root's from a file.
func newFixture(t *testing.T, withRootCRL bool) *fixture {
	t.Helper()
	k := catest.SharedKube(t)
	f := &fixture{k: k, leaseNS: k.Namespace(t), pki: crltest.New(t, "kubepublish")}
	f.rc = kubetest.Impersonate(t, k, f.leaseNS, clusterRules, leaseRules, authorizationv1.ResourceAttributes{
		Namespace: f.leaseNS, Group: "coordination.k8s.io", Resource: "leases", Verb: "update", Name: "meshca-crl"})
	dir := t.TempDir()
	store, err := crl.OpenFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f.reg, err = crl.NewRegistry(context.Background(), crl.RegistryConfig{Store: store, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	f.rootFile = filepath.Join(dir, "ca-crl.pem")
	var root []byte
	if withRootCRL {
		root = crl.EncodeBundle(f.pki.RootCRL(t, 1, 48*time.Hour))
	}
	f.writeRoot(t, root)
	f.src, err = crl.NewPublisher(crl.PublisherConfig{
		Authorities: []crl.Authority{{Name: "cacerts", Signer: crl.KeySigner{CA: f.pki.Inter, Key: f.pki.InterKey},
			Chain: func(context.Context) ([]*x509.Certificate, error) { return f.pki.Chain(), nil }}},
		Registry: f.reg, Files: []string{f.rootFile}, Interval: 100 * time.Millisecond, Logger: discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, f.src.Run)
	return f
}

func (f *fixture) writeRoot(t *testing.T, data []byte) {
	t.Helper()
	if err := os.WriteFile(f.rootFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// run runs fn until the test ends.
func (f *fixture) run(t *testing.T, fn func(context.Context) error) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func (f *fixture) publisher(t *testing.T, identity, selector string, src kubepublish.Source) (*kubepublish.Publisher,
	context.CancelFunc) {
	t.Helper()
	p, err := kubepublish.New(kubepublish.Config{NamespaceSelector: selector, LeaseNamespace: f.leaseNS,
		Identity: identity, LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second,
		RetryPeriod: 250 * time.Millisecond, Kube: f.rc, Source: src, Logger: discard(),
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return p, f.run(t, p.Run)
}

func (f *fixture) configMap(ns string) (*corev1.ConfigMap, error) {
	return f.k.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), kubepublish.ConfigMapName, metav1.GetOptions{})
}

// holds checks that the ConfigMap of ns holds want with Istio's label.
func (f *fixture) holds(ns string, want func(string) error) func() error {
	return func() error {
		cm, err := f.configMap(ns)
		if err != nil {
			return err
		}
		if cm.Labels[kubepublish.IstioConfigLabel] != "true" {
			return fmt.Errorf("ConfigMap %s/%s lacks istio.io/config=true", ns, cm.Name)
		}
		return want(cm.Data[kubepublish.ConfigMapKey])
	}
}

func (f *fixture) current(t *testing.T) func(string) error {
	return func(got string) error {
		want, _ := f.src.PEM()
		if got != string(want) {
			return fmt.Errorf("holds %d bytes, the publisher has %d", len(got), len(want))
		}
		return nil
	}
}

func TestConfigMapsInEveryNamespaceFollowRevocations(t *testing.T) {
	f := newFixture(t, true)
	ns1, ns2 := f.k.Namespace(t), f.k.Namespace(t)
	start := time.Now()
	f.publisher(t, "replica-0", "", f.src)
	all, err := f.k.Client.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range all.Items {
		if ns.Status.Phase != corev1.NamespaceTerminating {
			catest.Eventually(t, 20*time.Second, "ConfigMap in "+ns.Name, f.holds(ns.Name, f.current(t)))
		}
	}
	t.Logf("ConfigMaps in all %d namespaces after %s", len(all.Items), time.Since(start).Round(time.Millisecond))

	t.Run("a new namespace gets its ConfigMap", func(t *testing.T) {
		ns3 := f.k.Namespace(t)
		took := catest.Eventually(t, 5*time.Second, "ConfigMap in a new namespace", f.holds(ns3, f.current(t)))
		t.Logf("in %s", took.Round(time.Millisecond))
	})

	t.Run("a revocation reaches the ConfigMaps within a second", func(t *testing.T) {
		leaf := f.pki.Leaf(t, "spiffe://cluster.local/ns/shop/sa/cart", time.Hour)
		start := time.Now()
		req := crl.RevokeRequest{Certificate: leaf, Reason: crl.KeyCompromise}
		if _, err := f.reg.Revoke(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		lists := func(got string) error {
			crls, err := crl.ParseBundle([]byte(got))
			if err != nil {
				return err
			}
			for _, c := range crls {
				for _, e := range c.RevokedCertificateEntries {
					if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
						return nil
					}
				}
			}
			return errors.New("the revoked serial is not listed")
		}
		for _, ns := range []string{ns1, ns2} {
			catest.Eventually(t, time.Second-time.Since(start), "revocation in "+ns, f.holds(ns, lists))
		}
		t.Logf("revocation in the ConfigMaps %s after Revoke", time.Since(start).Round(time.Millisecond))
	})

	t.Run("an edited ConfigMap is reverted", func(t *testing.T) {
		cm, err := f.configMap(ns1)
		if err != nil {
			t.Fatal(err)
		}
		cm.Data[kubepublish.ConfigMapKey] = "tampered"
		delete(cm.Labels, kubepublish.IstioConfigLabel)
		_, err = f.k.Client.CoreV1().ConfigMaps(ns1).Update(context.Background(), cm, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		catest.Eventually(t, 5*time.Second, "edit reverted", f.holds(ns1, f.current(t)))
	})

	t.Run("a deleted ConfigMap is recreated", func(t *testing.T) {
		if err := f.k.Client.CoreV1().ConfigMaps(ns2).Delete(context.Background(), kubepublish.ConfigMapName,
			metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		catest.Eventually(t, 5*time.Second, "ConfigMap recreated", f.holds(ns2, f.current(t)))
	})

	t.Run("a terminating namespace is left alone", func(t *testing.T) {
		ns := f.k.Namespace(t)
		catest.Eventually(t, 5*time.Second, "ConfigMap", f.holds(ns, f.current(t)))
		before, _ := f.src.PEM()
		// No namespace controller runs in the test cluster: the namespace stays Terminating.
		err := f.k.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		catest.Eventually(t, 5*time.Second, "namespace terminating", func() error {
			n, err := f.k.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
			if err != nil || n.Status.Phase != corev1.NamespaceTerminating {
				return fmt.Errorf("phase %v, %v", n.Status.Phase, err)
			}
			return nil
		})
		time.Sleep(300 * time.Millisecond) // the informer sees the phase
		leaf := f.pki.Leaf(t, "spiffe://x/y", time.Hour)
		if _, err := f.reg.Revoke(context.Background(), crl.RevokeRequest{Certificate: leaf}); err != nil {
			t.Fatal(err)
		}
		catest.Eventually(t, 5*time.Second, "revocation elsewhere", f.holds(ns1, f.current(t)))
		if err := f.holds(ns, func(got string) error {
			if got != string(before) {
				return errors.New("written after the namespace began terminating")
			}
			return nil
		})(); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	})
}

func TestAnEmptyCRLClearsThePublishedOne(t *testing.T) {
	f := newFixture(t, false) // no root CRL yet: incomplete, so "" (istiod's "no CRL")
	ns := f.k.Namespace(t)
	f.publisher(t, "replica-0", "", f.src)
	empty := func(got string) error {
		if got != "" {
			return fmt.Errorf("holds %d bytes, want \"\"", len(got))
		}
		return nil
	}
	catest.Eventually(t, 20*time.Second, "empty ca-crl.pem", f.holds(ns, empty))
	f.writeRoot(t, crl.EncodeBundle(f.pki.RootCRL(t, 1, 48*time.Hour)))
	catest.Eventually(t, 5*time.Second, "CRLs published", f.holds(ns, func(got string) error {
		if crls, err := crl.ParseBundle([]byte(got)); err != nil || len(crls) != 2 {
			return fmt.Errorf("%d CRLs, %v", len(crls), err)
		}
		return nil
	}))
	f.writeRoot(t, nil) // the operator withdraws the root CRL (istio#61073: "" must clear)
	catest.Eventually(t, 5*time.Second, "cleared", f.holds(ns, empty))
}

// never is a source that never becomes ready.
type never struct{}

func (never) PEM() ([]byte, bool)      { return nil, false }
func (never) Changed() <-chan struct{} { return make(chan struct{}) }

func TestNothingIsWrittenBeforeTheSourceIsReady(t *testing.T) {
	f := newFixture(t, true)
	ns := f.k.Namespace(t)
	p, _ := f.publisher(t, "replica-0", "", never{})
	catest.Eventually(t, 20*time.Second, "leader", func() error {
		if !p.Leader() {
			return errors.New("not leading")
		}
		return nil
	})
	time.Sleep(time.Second)
	_, err := f.configMap(ns)
	if !apierrors.IsNotFound(err) {
		t.Fatalf("ConfigMap with a source not ready: %v, want NotFound", err)
	}
}

func TestOneReplicaWritesAndAnotherTakesOver(t *testing.T) {
	f := newFixture(t, true)
	a, stopA := f.publisher(t, "replica-a", "", f.src)
	catest.Eventually(t, 20*time.Second, "a leads", func() error {
		if !a.Leader() {
			return errors.New("a does not lead")
		}
		return nil
	})
	b, _ := f.publisher(t, "replica-b", "", f.src)
	time.Sleep(time.Second) // several retry periods of b
	if b.Leader() {
		t.Fatal("two replicas lead")
	}
	stopA()
	took := catest.Eventually(t, 5*time.Second, "b takes over", func() error {
		if !b.Leader() {
			return errors.New("b does not lead")
		}
		return nil
	})
	t.Logf("takeover after %s", took.Round(time.Millisecond))
}

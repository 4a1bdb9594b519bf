package trustbundle_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/trustbundle"
)

func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }

// rotatingSource is a roots source whose roots the test changes, as a CA rotation would.
type rotatingSource struct {
	mu    sync.Mutex
	roots []*x509.Certificate
}

func (s *rotatingSource) Roots(context.Context) ([]*x509.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.roots, nil
}

func (s *rotatingSource) set(roots ...*x509.Certificate) {
	s.mu.Lock()
	s.roots = roots
	s.mu.Unlock()
}

// writeCounter counts the mutating requests a client sends, leader election (Lease) traffic excepted.
type writeCounter struct {
	n  atomic.Int64
	rt http.RoundTripper
}

func (w *writeCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet && !strings.Contains(r.URL.Path, "/apis/coordination.k8s.io/") {
		w.n.Add(1)
	}
	return w.rt.RoundTrip(r)
}

type fixture struct {
	k        *catest.Kube
	label    string // key=value that selects this test's namespaces
	signer   string
	leaseNS  string
	gvr      schema.GroupVersionResource
	dyn      dynamic.Interface
	source   *rotatingSource
	rootA    *x509.Certificate
	selected []string
	rbac     *rest.Config
}

func newFixture(t *testing.T, k *catest.Kube) *fixture {
	t.Helper()
	id := make([]byte, 4)
	rand.Read(id)
	// The shipped RBAC names one signer, one ClusterTrustBundle and one Lease, so tests that publish take
	// turns (no t.Parallel) and remove both objects when done; namespaces are told apart by a label.
	f := &fixture{k: k, label: "meshca-test=" + hex.EncodeToString(id),
		signer: "meshca.io/workload-ca", leaseNS: catest.MeshcaNamespace, source: &rotatingSource{}}
	f.rbac = catest.MeshcaRBAC(t, k)
	f.gvr = schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1", Resource: "clustertrustbundles"}
	t.Cleanup(func() { // runs after the publishers have stopped
		ctx := context.Background()
		_ = k.Client.CoordinationV1().Leases(f.leaseNS).Delete(ctx, "meshca-trustbundle", metav1.DeleteOptions{})
		_ = f.dyn.Resource(f.gvr).
			Delete(ctx, trustbundle.ClusterTrustBundleName(f.signer, "roots"), metav1.DeleteOptions{})
	})
	f.rootA = newRoot(t)
	f.source.set(f.rootA)
	var err error
	if f.dyn, err = dynamic.NewForConfig(k.Config); err != nil {
		t.Fatal(err)
	}
	return f
}

// namespace creates a namespace, labelled so that this test's publisher selects it when selected is true.
func (f *fixture) namespace(t *testing.T, selected bool) string {
	t.Helper()
	ns := f.k.Namespace(t)
	if selected {
		f.labelNamespace(t, ns)
		f.selected = append(f.selected, ns)
	}
	return ns
}

func (f *fixture) labelNamespace(t *testing.T, ns string) {
	t.Helper()
	k, v, _ := strings.Cut(f.label, "=")
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, k, v)
	if _, err := f.k.Client.CoreV1().Namespaces().Patch(context.Background(), ns, types.MergePatchType, []byte(patch),
		metav1.PatchOptions{}); err != nil {
		t.Fatalf("labelling namespace %s: %v", ns, err)
	}
}

// kubeConfig returns the client configuration the publisher runs with: meshca's service account with the
// RBAC of manifests/base, so a missing rule fails the tests.
func (f *fixture) kubeConfig(t *testing.T) *rest.Config {
	t.Helper()
	return rest.CopyConfig(f.rbac)
}

type replica struct {
	p      *trustbundle.Publisher
	reg    *prometheus.Registry
	writes *writeCounter
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

func (f *fixture) start(t *testing.T, identity string, mutate ...func(*trustbundle.Config)) *replica {
	t.Helper()
	cfg := f.kubeConfig(t)
	wc := &writeCounter{}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { wc.rt = rt; return wc })
	reg := prometheus.NewRegistry()
	c := trustbundle.Config{
		SignerName: f.signer, NamespaceSelector: f.label,
		LeaseNamespace: f.leaseNS, Identity: identity,
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 250 * time.Millisecond,
		PollInterval: 200 * time.Millisecond,
		Kube:         cfg, Source: f.source, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).
			With("replica", identity),
	}
	for _, m := range mutate {
		m(&c)
	}
	p, err := trustbundle.New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{p: p, reg: reg, writes: wc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := p.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (f *fixture) configMapHolds(ns string, want []byte) func() error {
	return func() error {
		cm, err := f.k.Client.CoreV1().
			ConfigMaps(ns).
			Get(context.Background(), trustbundle.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := cm.Data[trustbundle.ConfigMapKey]; got != string(want) {
			return fmt.Errorf("ConfigMap %s/%s holds %d bytes of other roots", ns, cm.Name, len(got))
		}
		if cm.Labels[trustbundle.ManagedByLabel] != "meshca" {
			return fmt.Errorf("ConfigMap %s/%s lacks the managed-by label", ns, cm.Name)
		}
		return nil
	}
}

func (f *fixture) bundleHolds(p *trustbundle.Publisher, want []byte) func() error {
	return func() error {
		u, err := f.dyn.Resource(f.gvr).Get(context.Background(), p.ClusterTrustBundleName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		spec, _ := u.Object["spec"].(map[string]any)
		if spec["signerName"] != f.signer {
			return fmt.Errorf("signerName %v, want %s", spec["signerName"], f.signer)
		}
		if spec["trustBundle"] != string(want) {
			return errors.New("trustBundle holds other roots")
		}
		return nil
	}
}

func (f *fixture) allHold(p *trustbundle.Publisher, want []byte) func() error {
	return func() error {
		if err := f.bundleHolds(p, want)(); err != nil {
			return err
		}
		for _, ns := range f.selected {
			if err := f.configMapHolds(ns, want)(); err != nil {
				return err
			}
		}
		return nil
	}
}

// encode is the bundle the publisher must write for roots, built here from Encode's documented contract (each
// root once, as a header-less CERTIFICATE block, ordered by NotBefore then by SHA-256 of the DER), not by Encode.
func encode(t *testing.T, roots ...*x509.Certificate) []byte {
	t.Helper()
	type entry struct {
		cert *x509.Certificate
		sum  [sha256.Size]byte
	}
	var entries []entry
	for _, r := range roots {
		sum := sha256.Sum256(r.Raw)
		if !slices.ContainsFunc(entries, func(e entry) bool { return e.sum == sum }) {
			entries = append(entries, entry{r, sum})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := a.cert.NotBefore.Compare(b.cert.NotBefore); c != 0 {
			return c
		}
		return bytes.Compare(a.sum[:], b.sum[:])
	})
	var out []byte
	for _, e := range entries {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.cert.Raw})...)
	}
	if len(out) == 0 {
		t.Fatal("encode: no roots")
	}
	return out
}

func TestPublisherPublishesAndRepairs(t *testing.T) {
	k := catest.SharedKube(t)
	f := newFixture(t, k)
	ns1, ns2 := f.namespace(t, true), f.namespace(t, true)
	other := f.namespace(t, false)
	r := f.start(t, "replica-0")
	want := encode(t, f.rootA)

	took := catest.Eventually(t, 20*time.Second, "first publication", f.allHold(r.p, want))
	t.Logf(
		"ClusterTrustBundle and %d ConfigMaps published %s after start",
		len(f.selected),
		took.Round(time.Millisecond),
	)
	if !strings.HasPrefix(r.p.ClusterTrustBundleName(), strings.ReplaceAll(f.signer, "/", ":")+":") {
		t.Errorf("ClusterTrustBundle name %q lacks the signer prefix", r.p.ClusterTrustBundleName())
	}

	t.Run("a namespace the selector does not match gets no ConfigMap", func(t *testing.T) {
		time.Sleep(time.Second) // several polls and sync rounds
		_, err := k.Client.CoreV1().
			ConfigMaps(other).
			Get(context.Background(), trustbundle.ConfigMapName, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Fatalf("ConfigMap in unselected namespace %s: err = %v, want NotFound", other, err)
		}
	})

	t.Run("a rotation publishes both roots, then only the new one", func(t *testing.T) {
		rootB := newRoot(t)
		f.source.set(rootB, f.rootA)
		took := catest.Eventually(t, 10*time.Second, "both roots published", f.allHold(r.p, encode(t, f.rootA, rootB)))
		t.Logf("rotation published everywhere in %s", took.Round(time.Millisecond))
		f.source.set(rootB)
		catest.Eventually(t, 10*time.Second, "old root withdrawn", f.allHold(r.p, encode(t, rootB)))
		want = encode(t, rootB)
	})

	t.Run("a deleted ConfigMap comes back", func(t *testing.T) {
		if err := k.Client.CoreV1().ConfigMaps(ns1).Delete(context.Background(), trustbundle.ConfigMapName,
			metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		took := catest.Eventually(t, 10*time.Second, "ConfigMap recreated", f.configMapHolds(ns1, want))
		t.Logf("deleted ConfigMap recreated in %s", took.Round(time.Millisecond))
	})

	t.Run("an edited ConfigMap is reverted", func(t *testing.T) {
		cm, err := k.Client.CoreV1().
			ConfigMaps(ns2).
			Get(context.Background(), trustbundle.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data[trustbundle.ConfigMapKey] = string(encode(t, newRoot(t)))
		cm.Data["extra"] = "x"
		delete(cm.Labels, trustbundle.ManagedByLabel)
		if _, err := k.Client.CoreV1().ConfigMaps(ns2).Update(context.Background(), cm,
			metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		took := catest.Eventually(t, 10*time.Second, "ConfigMap reverted", func() error {
			if err := f.configMapHolds(ns2, want)(); err != nil {
				return err
			}
			cm, err := k.Client.CoreV1().
				ConfigMaps(ns2).
				Get(context.Background(), trustbundle.ConfigMapName, metav1.GetOptions{})
			if err == nil && len(cm.Data) != 1 {
				return fmt.Errorf("ConfigMap keeps %d keys", len(cm.Data))
			}
			return err
		})
		t.Logf("edited ConfigMap reverted in %s", took.Round(time.Millisecond))
	})

	t.Run("a deleted ClusterTrustBundle comes back", func(t *testing.T) {
		if err := f.dyn.Resource(f.gvr).Delete(context.Background(), r.p.ClusterTrustBundleName(),
			metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		took := catest.Eventually(t, 10*time.Second, "ClusterTrustBundle recreated", f.bundleHolds(r.p, want))
		t.Logf("deleted ClusterTrustBundle recreated in %s", took.Round(time.Millisecond))
	})

	t.Run("an edited ClusterTrustBundle is reverted", func(t *testing.T) {
		u, err := f.dyn.Resource(f.gvr).Get(context.Background(), r.p.ClusterTrustBundleName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u.Object["spec"].(map[string]any)["trustBundle"] = string(encode(t, newRoot(t)))
		if _, err := f.dyn.Resource(f.gvr).Update(context.Background(), u, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		catest.Eventually(t, 10*time.Second, "ClusterTrustBundle reverted", f.bundleHolds(r.p, want))
	})

	t.Run("a new namespace gets its ConfigMap within seconds", func(t *testing.T) {
		start := time.Now()
		ns := f.k.Namespace(t)
		f.labelNamespace(t, ns)
		catest.Eventually(t, 5*time.Second, "ConfigMap in new namespace", f.configMapHolds(ns, want))
		t.Logf("new namespace got its ConfigMap %s after creation", time.Since(start).Round(time.Millisecond))
	})

	t.Run("a namespace labelled later gets its ConfigMap", func(t *testing.T) {
		f.labelNamespace(t, other)
		catest.Eventually(t, 5*time.Second, "ConfigMap in newly selected namespace", f.configMapHolds(other, want))
	})

	if got := errorsOf(t, r.reg, "configmap"); got != 0 {
		t.Errorf("configmap publish errors = %v, want 0", got)
	}
}

// errorsOf returns meshca_trustbundle_publish_errors_total for target.
func errorsOf(t *testing.T, reg *prometheus.Registry, target string) float64 {
	t.Helper()
	v, _ := catest.Sample(t, reg, "meshca_trustbundle_publish_errors_total", map[string]string{"target": target})
	return v
}

func TestPublisherRefusesRootsThatAreNotCAs(t *testing.T) {
	k := catest.SharedKube(t)
	f := newFixture(t, k)
	f.namespace(t, true)
	r := f.start(t, "replica-0")
	want := encode(t, f.rootA)
	catest.Eventually(t, 20*time.Second, "first publication", f.allHold(r.p, want))

	f.source.set(f.rootA, newLeaf(t))
	catest.Eventually(t, 5*time.Second, "source error counted", func() error {
		if n := errorsOf(t, r.reg, "source"); n == 0 {
			return errors.New("no source error counted")
		}
		return nil
	})
	writes := r.writes.n.Load()
	time.Sleep(time.Second)
	if err := f.allHold(r.p, want)(); err != nil {
		t.Fatalf("a set with a non-CA certificate replaced the published bundle: %v", err)
	}
	if n := r.writes.n.Load(); n != writes {
		t.Errorf("%d writes after the source turned invalid, want none", n-writes)
	}
}

func TestOnlyTheLeaderWrites(t *testing.T) {
	k := catest.SharedKube(t)
	f := newFixture(t, k)
	ns := f.namespace(t, true)
	a, b := f.start(t, "replica-a"), f.start(t, "replica-b")
	want := encode(t, f.rootA)
	catest.Eventually(t, 20*time.Second, "first publication", f.allHold(a.p, want))

	leader, follower := a, b
	if b.p.Leader() {
		leader, follower = b, a
	}
	if !leader.p.Leader() || follower.p.Leader() {
		t.Fatalf("leaders: a=%v b=%v, want exactly one", a.p.Leader(), b.p.Leader())
	}
	lease, err := k.Client.CoordinationV1().
		Leases(f.leaseNS).
		Get(context.Background(), "meshca-trustbundle", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lease holder %s", *lease.Spec.HolderIdentity)

	// Cause more writes: a deletion and a rotation.
	if err := k.Client.CoreV1().ConfigMaps(ns).Delete(context.Background(), trustbundle.ConfigMapName,
		metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 10*time.Second, "ConfigMap recreated", f.configMapHolds(ns, want))
	rootB := newRoot(t)
	f.source.set(f.rootA, rootB)
	want = encode(t, f.rootA, rootB)
	catest.Eventually(t, 10*time.Second, "rotation published", f.allHold(a.p, want))
	if n := follower.writes.n.Load(); n != 0 {
		t.Fatalf("the follower sent %d writes, want 0", n)
	}
	if n := leader.writes.n.Load(); n < 4 { // bundle, ConfigMap, ConfigMap again, then both updated
		t.Fatalf("the leader sent %d writes, want at least 4", n)
	}
	t.Logf("writes: leader %d, follower %d", leader.writes.n.Load(), follower.writes.n.Load())

	// The leader stops (releasing the Lease); the follower takes over and repairs.
	leaderWrites := leader.writes.n.Load()
	stopped := time.Now()
	leader.stop()
	took := catest.Eventually(t, 10*time.Second, "follower takes over", func() error {
		if !follower.p.Leader() {
			return errors.New("follower does not lead")
		}
		return nil
	})
	t.Logf("follower leads %s after the leader stopped", took.Round(time.Millisecond))
	if err := k.Client.CoreV1().ConfigMaps(ns).Delete(context.Background(), trustbundle.ConfigMapName,
		metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 10*time.Second, "ConfigMap recreated by the new leader", f.configMapHolds(ns, want))
	t.Logf("ConfigMap repaired %s after the old leader stopped", time.Since(stopped).Round(time.Millisecond))
	if n := leader.writes.n.Load(); n != leaderWrites {
		t.Errorf("the stopped leader sent %d more writes", n-leaderWrites)
	}
	if follower.writes.n.Load() == 0 {
		t.Error("the new leader sent no writes")
	}
}

// A cluster that serves ClusterTrustBundle only as v1beta1, like Kubernetes 1.33–1.36 with the beta enabled.
func TestPublisherFallsBackToV1beta1(t *testing.T) {
	k := catest.StartKube(
		t,
		"--runtime-config=certificates.k8s.io/v1/clustertrustbundles=false,certificates.k8s.io/v1beta1=true,"+
			"certificates.k8s.io/v1beta1/clustertrustbundles=true",
	)
	if _, err := k.Client.Discovery().ServerResourcesForGroupVersion("certificates.k8s.io/v1beta1"); err != nil {
		t.Fatalf("test cluster does not serve certificates.k8s.io/v1beta1: %v", err)
	}
	f := newFixture(t, k)
	f.namespace(t, true)
	f.gvr.Version = "v1beta1"
	r := f.start(t, "replica-0")
	catest.Eventually(t, 20*time.Second, "v1beta1 ClusterTrustBundle published", f.allHold(r.p, encode(t, f.rootA)))
	v1 := f.gvr
	v1.Version = "v1"
	if _, err := f.dyn.Resource(v1).Get(context.Background(), r.p.ClusterTrustBundleName(),
		metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("v1 ClusterTrustBundle: %v, want NotFound (v1 disabled in this cluster)", err)
	}
}

// A leader whose Lease is taken (a partition, a long pause) stops writing, and campaigns again.
func TestLeaderThatLosesTheLeaseStopsWriting(t *testing.T) {
	k := catest.SharedKube(t)
	f := newFixture(t, k)
	ns := f.namespace(t, true)
	r := f.start(t, "replica-0")
	want := encode(t, f.rootA)
	catest.Eventually(t, 20*time.Second, "first publication", f.allHold(r.p, want))

	leases := k.Client.CoordinationV1().Leases(f.leaseNS)
	lease, err := leases.Get(context.Background(), "meshca-trustbundle", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	intruder, dur, now := "intruder", int32(8), metav1.NewMicroTime(time.Now())
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds = &intruder, &dur
	lease.Spec.AcquireTime, lease.Spec.RenewTime = &now, &now
	if _, err := leases.Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	took := catest.Eventually(t, 6*time.Second, "leader steps down", func() error {
		if r.p.Leader() {
			return errors.New("still leads")
		}
		return nil
	})
	t.Logf("stepped down %s after the Lease was taken (renewDeadline 3s)", took.Round(time.Millisecond))
	writes := r.writes.n.Load()
	if err := k.Client.CoreV1().ConfigMaps(ns).Delete(context.Background(), trustbundle.ConfigMapName,
		metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if n := r.writes.n.Load(); n != writes {
		t.Fatalf("a replica that lost the Lease sent %d writes", n-writes)
	}
	if _, err := k.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), trustbundle.ConfigMapName,
		metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("ConfigMap while nobody of ours leads: %v, want NotFound", err)
	}
	took = catest.Eventually(t, 20*time.Second, "replica leads again and repairs", f.configMapHolds(ns, want))
	t.Logf("leads again and repaired %s later (intruder's Lease: 8s)", took.Round(time.Millisecond))
}

// How long a new root takes to reach many namespaces with the publisher's default client rate limit.
func TestRotationReachesManyNamespaces(t *testing.T) {
	k := catest.SharedKube(t)
	f := newFixture(t, k)
	const n = 200
	start := time.Now()
	for range n {
		f.namespace(t, true)
	}
	t.Logf("created %d namespaces in %s", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	r := f.start(t, "replica-0", func(c *trustbundle.Config) { c.Kube.QPS, c.Kube.Burst = 0, 0 })
	took := catest.Eventually(t, 60*time.Second, "first publication", f.allHold(r.p, encode(t, f.rootA)))
	t.Logf("%d ConfigMaps and the bundle created %s after start (default 50 QPS)", n, took.Round(time.Millisecond))
	rootB := newRoot(t)
	f.source.set(f.rootA, rootB)
	start = time.Now()
	catest.Eventually(t, 60*time.Second, "rotation written", func() error {
		// the metric, to time it without reading 200 objects
		got, _ := catest.Sample(t, r.reg, "meshca_trustbundle_writes_total",
			map[string]string{"operation": "update", "target": "configmap"})
		if got < n {
			return fmt.Errorf("%v ConfigMaps updated", got)
		}
		return nil
	})
	t.Logf("rotation written to %d namespaces in %s", n, time.Since(start).Round(time.Millisecond))
	if err := f.allHold(r.p, encode(t, f.rootA, rootB))(); err != nil {
		t.Fatal(err)
	}
	if got := errorsOf(t, r.reg, "configmap"); got != 0 {
		t.Errorf("configmap publish errors = %v, want 0", got)
	}
}

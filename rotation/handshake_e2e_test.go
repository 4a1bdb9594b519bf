package rotation_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/rotation"
)

// rootsOf names the roots of a test: "old", "new", "third".
func rootsOf(roots map[string]*x509.Certificate) func(*x509.Certificate) string {
	return func(c *x509.Certificate) string {
		for n, r := range roots {
			if r.Equal(c) {
				return n
			}
		}
		return "other"
	}
}

// filesState is what the peers' files (or ztunnel's memory) say at one moment: the roots their leaves chain to
// and their anchors.
func filesState(t *testing.T, agents []peer, names func(*x509.Certificate) string,
	pools map[string]*x509.CertPool) (leaves, bundles []string) {
	for _, a := range agents {
		c, err := a.identity()
		if err != nil {
			t.Errorf("%v", err)
			return nil, nil
		}
		leaf, root := c.Leaf, "other"
		inter := x509.NewCertPool()
		for _, d := range c.Certificate[1:] {
			if ic, err := x509.ParseCertificate(d); err == nil {
				inter.AddCert(ic)
			}
		}
		for n, p := range pools {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: p, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
				root = n
			}
		}
		anchors, err := a.anchors()
		if err != nil {
			t.Errorf("%s: anchors: %v", a.label(), err)
			return nil, nil
		}
		var b []string
		for _, r := range anchors {
			b = append(b, names(r))
		}
		slices.Sort(b)
		leaves, bundles = append(leaves, root), append(bundles, strings.Join(b, "+"))
	}
	return leaves, bundles
}

func pemOf(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// rotationCap is the leaf lifetime cap the tests' rotations set from staged on: the least the code allows
// (ca.MinLifetime), which is above the policy's maximum here, so the agents' short lifetimes stay as they are.
const rotationCap = ca.MinLifetime

// startRotation stages a rotation from old to next with the cap and publishes the next root (staged →
// publishing needs no gate), as an operator does through Controller.Do.
func startRotation(t *testing.T, c *rotation.Controller, next, old *x509.Certificate) {
	t.Helper()
	if err := do(c, rotation.Change{Action: rotation.ActionStart, Next: next, Old: old,
		MaxLeafLifetime: rotationCap, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if c.State().LifetimeCap() != rotationCap {
		t.Fatalf("staged with a leaf lifetime cap of %s, want %s", c.State().LifetimeCap(), rotationCap)
	}
	if err := do(c, rotation.Change{Action: rotation.ActionAdvance}); err != nil {
		t.Fatalf("advance from staged: %v", err)
	}
	if ph := c.State().Phase; ph != rotation.PhasePublishing {
		t.Fatalf("after staged the rotation is %s, want publishing", ph)
	}
}

// do carries out ch through the controller, as the admin API does.
func do(c *rotation.Controller, ch rotation.Change) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := c.Do(ctx, ch, 0)
	return err
}

func every(xs []string, want string) bool {
	return len(xs) > 0 && !slices.ContainsFunc(xs, func(x string) bool { return x != want })
}

// Three pods run Istio's real pilot-agent with bound tokens, and a ztunnel-style client acts for three ambient
// identities on its node (ImpersonatedIdentity, checked by meshca's NodeAgents against a real kube-apiserver);
// a Go TLS server and client per holder, re-reading the files the agent writes (or ztunnel's memory) at every
// handshake, handshake between every pair continuously and keep one long-lived connection each, through a full
// rotation driven by the gates. No handshake fails and no connection breaks;
// the first leaf from the new CA appears only after every bundle holds the new root, the old root leaves only
// after every leaf chains to the new one, and every safe mix of leaf and bundle was seen. Then the negative
// control: a pod whose agent is stopped (SIGSTOP) holds the next rotation's gate and is named; forcing the
// rotation past it makes its peers' new leaves fail its verification as from an unknown authority.
func TestPilotAgentHandshakesThroughARotation(t *testing.T) {
	bin := catest.Binary(t, "pilot-agent")
	cacerts, oldCA := catest.FileCA(t)
	newCA, thirdCA := genCA(t), genCA(t)
	roots := map[string]*x509.Certificate{"old": oldCA.Root, "new": newCA.Root, "third": thirdCA.Root}
	names := rootsOf(roots)
	pools := map[string]*x509.CertPool{}
	for n, r := range roots {
		pools[n] = x509.NewCertPool()
		pools[n].AddCert(r)
	}
	policy := &ca.Policy{TrustDomain: catest.TrustDomain, MinTTL: 5 * time.Second, MaxTTL: time.Minute,
		DefaultTTL: 10 * time.Second}
	imp, zns, znode := nodeAgents(t, "ambient-a", "ambient-b", "ambient-c")
	statePath := filepath.Join(t.TempDir(), "rotation.json")
	c, err := rotation.New(rotation.Config{StateFile: statePath, MaxLifetime: time.Minute, Manual: true,
		Started: time.Now().Add(-time.Minute), Logger: catest.DiscardLogger(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	m := catest.StartMeshca(t, catest.MeshcaOptions{Policy: policy, Observer: c.Observer(nil),
		ExtraRootsFunc: c.ExtraRoots, WithdrawnRoots: c.WithdrawnRoots, LifetimeCap: c.LifetimeCap,
		Limits: ca.Limits{PerCallerRate: -1}, Impersonator: imp,
		Backends: []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, cacerts, nil)}}})
	caRoots := pemOf(oldCA.Root, newCA.Root, thirdCA.Root) // meshca's serving certificate may come from any
	// The third pod renews less often (every 20s), so that its certificate outlives the negative control.
	agents := []*podAgent{startPodAgent(t, bin, m, caRoots, "a", "a-0", 10*time.Second),
		startPodAgent(t, bin, m, caRoots, "b", "b-0", 10*time.Second),
		startPodAgent(t, bin, m, caRoots, "c", "c-0", 40*time.Second)}
	caPool := x509.NewCertPool()
	caPool.AppendCertsFromPEM(caRoots)
	var ambient []string
	for _, sa := range []string{"ambient-a", "ambient-b", "ambient-c"} {
		ambient = append(ambient, "spiffe://"+catest.TrustDomain+"/ns/"+zns+"/sa/"+sa)
	}
	// ztunnel renews every 10s; it is paused in the negative control after one last renewal.
	zt := startZtunnel(t, m, caPool, "ztunnel-0", znode, 20*time.Second, ambient...)
	var peers []peer
	for _, a := range agents {
		peers = append(peers, a)
	}
	for _, w := range zt.workloads {
		peers = append(peers, w)
	}
	var ids []string
	for _, p := range peers {
		ids = append(ids, p.spiffeID())
	}
	catest.Eventually(t, 90*time.Second, "every agent wrote its certificate and anchors", func() error {
		for _, a := range peers {
			if _, err := a.identity(); err != nil {
				return err
			}
			if _, err := a.anchors(); err != nil {
				return err
			}
		}
		return nil
	})

	pm := &podMesh{mixes: map[mix]int{}}
	addrs := make([]string, len(peers))
	for i, a := range peers {
		addrs[i] = pm.serverFor(t, a, ids, names)
	}
	type pair struct{ from, to int }
	var pairs []pair
	long := map[pair]*tls.Conn{}
	for i := range peers {
		for j := range peers {
			if i != j {
				p := pair{i, j}
				pairs = append(pairs, p)
				conn, err := pm.dial(peers[i], peers[j], addrs[j], names)
				if err != nil {
					t.Fatalf("long-lived connection %s -> %s: %v", peers[i].label(), peers[j].label(), err)
				}
				t.Cleanup(func() { conn.Close() })
				long[p] = conn
			}
		}
	}
	// Every pair handshakes anew, and pings over its long-lived connection, every 100ms until stop.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, p := range pairs {
				conn, err := pm.dial(peers[p.from], peers[p.to], addrs[p.to], names)
				if err == nil {
					conn.Close()
				}
				pm.record(err)
				buf := make([]byte, 4)
				if _, err = long[p].Write([]byte("ping")); err == nil {
					_, err = long[p].Read(buf)
				}
				if err != nil {
					pm.record(fmt.Errorf("long-lived connection %d -> %d broke: %w", p.from, p.to, err))
				}
			}
		}
	})
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(halt)

	// Watch the files: when the first new leaf appeared, when every bundle first held the new root, when every
	// leaf first chained to it, when the first bundle lost the old root.
	var firstNewLeaf, allBundlesNew, allLeavesNew, firstWithoutOld time.Time
	watch := func() {
		leaves, bundles := filesState(t, peers, names, pools)
		now := time.Now()
		set := func(at *time.Time, cond bool) {
			if at.IsZero() && cond {
				*at = now
			}
		}
		set(&firstNewLeaf, slices.Contains(leaves, "new"))
		set(&allBundlesNew, len(bundles) > 0 && !slices.ContainsFunc(bundles, func(b string) bool {
			return !strings.Contains(b, "new")
		}))
		set(&allLeavesNew, every(leaves, "new"))
		set(&firstWithoutOld, slices.ContainsFunc(bundles, func(b string) bool { return b == "new" }))
	}
	// advance moves the rotation one phase on once its gate opens, and checks the phase reached.
	advance := func(what string, want rotation.Phase) {
		t.Helper()
		catest.Eventually(t, 120*time.Second, what, func() error {
			watch()
			return do(c, rotation.Change{Action: rotation.ActionAdvance})
		})
		if ph := c.State().Phase; ph != want {
			t.Fatalf("%s: the rotation is %s, want %s", what, ph, want)
		}
	}
	time.Sleep(2 * time.Second)
	startRotation(t, c, newCA.Root, oldCA.Root)
	advance("the bundle gate opens", rotation.PhaseActivated)
	if _, bundles := filesState(t, peers, names, pools); slices.ContainsFunc(bundles, func(b string) bool {
		return b != "new+old"
	}) || c.Progress().HoldingNext != len(peers) {
		t.Fatalf("gate opened with bundles %q on disk, meshca counting %d holding the new root", bundles,
			c.Progress().HoldingNext)
	}
	if err := newCA.WriteDir(cacerts); err != nil {
		t.Fatal(err)
	}
	advance("the leaf gate opens", rotation.PhaseRetiring)
	catest.Eventually(t, 90*time.Second, "every bundle holds only the new root", func() error {
		watch()
		if _, bundles := filesState(t, peers, names, pools); !every(bundles, "new") {
			return fmt.Errorf("bundles %q", bundles)
		}
		return nil
	})
	advance("the rotation ends", rotation.PhaseIdle)
	time.Sleep(time.Second)
	halt()
	t.Logf("%d handshakes and pings, mixes %v", pm.ok, pm.mixes)
	if len(pm.failures) > 0 || len(pm.verify) > 0 {
		t.Fatalf("%d failures through the rotation, e.g. %v; %d failed verifications, e.g. %v", len(pm.failures),
			first(pm.failures), len(pm.verify), first(pm.verify))
	}
	if firstNewLeaf.Before(allBundlesNew) || firstWithoutOld.Before(allLeavesNew) {
		t.Errorf("first new leaf %s before every bundle held the new root %s, or the old root left at %s before "+
			"every leaf chained to the new one %s", firstNewLeaf, allBundlesNew, firstWithoutOld, allLeavesNew)
	}
	for _, want := range []mix{{"old", "old"}, {"old", "new+old"}, {"new", "new+old"}, {"new", "new"}} {
		if pm.mixes[want] == 0 {
			t.Errorf("no handshake with a leaf from the %s root verified against bundle %s: %v", want.leaf,
				want.bundle, pm.mixes)
		}
	}
	if p := c.Progress(); p.Holders != len(peers) || p.Coarse != 0 {
		t.Errorf("meshca counts %d holders (%d coarse), want the %d pods and ztunnel identities", p.Holders,
			p.Coarse, len(peers))
	}
	t.Logf("ztunnel: %d failed requests (retried)", zt.errs.Load())
	negativeControl(t, agents, zt, addrs[2], names, c, func() error { return thirdCA.WriteDir(cacerts) },
		newCA.Root, thirdCA.Root, pm)
}

func first(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// negativeControl stops pod c's agent (SIGSTOP) and the ztunnel (after one last renewal) and starts a rotation
// to third: c and the ztunnel's identities hold the bundle gate and are named, with their kind and node; forced
// past them, with cacerts switched (switchCA), pod a's leaf from the third CA fails c's verification as from an
// unknown authority.
func negativeControl(t *testing.T, agents []*podAgent, zt *ztunnelAgent, addrC string,
	names func(*x509.Certificate) string, c *rotation.Controller, switchCA func() error,
	cur, third *x509.Certificate, pm *podMesh) {
	t.Helper()
	stuck := agents[2]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := zt.pause(ctx); err != nil {
		t.Fatalf("ztunnel's last renewal: %v", err)
	}
	if err := syscall.Kill(-stuck.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-stuck.pid, syscall.SIGCONT)
	startRotation(t, c, third, cur)
	catest.Eventually(t, 60*time.Second, "the running pods hold the third root", func() error {
		for _, a := range agents[:2] {
			anchors, err := a.anchors()
			if err != nil || !slices.ContainsFunc(anchors, third.Equal) {
				return fmt.Errorf("pod %s: %d anchors (%v)", a.name, len(anchors), err)
			}
		}
		return nil
	})
	want := map[string]rotation.Laggard{stuck.name: {Kind: rotation.HolderPod, Namespace: "default",
		Node: "node-" + stuck.name}}
	for _, w := range zt.workloads {
		id, _ := strings.CutPrefix(w.id, "spiffe://"+catest.TrustDomain+"/ns/")
		ns, _, _ := strings.Cut(id, "/")
		want[w.label()] = rotation.Laggard{Kind: rotation.HolderNodeAgent, Namespace: ns, Node: zt.node}
	}
	p := c.Progress()
	got := map[string]rotation.Laggard{}
	for _, l := range p.Laggards {
		got[l.Identity] = rotation.Laggard{Kind: l.Kind, Namespace: l.Namespace, Node: l.Node}
	}
	if p.HoldingNext != 2 || !maps.Equal(got, want) {
		t.Fatalf("the stopped pod and ztunnel must hold the gate and be named: %d hold the third root, "+
			"laggards %v, want %v", p.HoldingNext, got, want)
	}
	if err := do(c, rotation.Change{Action: rotation.ActionAdvance}); !errors.Is(err, rotation.ErrGateClosed) {
		t.Fatalf("advance past the stopped pod: %v, want ErrGateClosed", err)
	}
	forced := rotation.Change{Action: rotation.ActionAdvance, Force: true, Reason: "negative control"}
	if err := do(c, forced); err != nil {
		t.Fatal(err)
	}
	if st := c.State(); st.Phase != rotation.PhaseActivated || !st.History[len(st.History)-1].Forced {
		t.Fatalf("forced past the stopped pod: %s, history %+v", st.Phase, st.History)
	}
	if err := switchCA(); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 60*time.Second, "pod a's new leaf fails the stopped pod's verification", func() error {
		conn, err := pm.dial(agents[0], stuck, addrC, names)
		if err == nil {
			conn.Close()
			return errors.New("pod a still handshakes with the stopped pod")
		}
		var last error
		pm.mu.Lock()
		if n := len(pm.verify); n > 0 {
			last = pm.verify[n-1]
		}
		pm.mu.Unlock()
		var ua x509.UnknownAuthorityError
		if !errors.As(last, &ua) {
			return fmt.Errorf("handshake failed with %v; the stopped pod's verification: %v", err, last)
		}
		return nil
	})
}

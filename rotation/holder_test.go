package rotation_test

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/rotation"
)

// byPod returns res as issued to the pod uid/name on node, in res's namespace; impersonated makes the caller a
// ztunnel pod in istio-system asking for res's identity.
func byPod(res *ca.Result, uid, name, node string, impersonated bool) *ca.Result {
	r := *res
	ns := r.Identity.Namespace
	if impersonated {
		ns = "istio-system"
	}
	r.Caller = &authn.Caller{Namespace: ns, ServiceAccount: r.Identity.ServiceAccount, PodName: name, PodUID: uid,
		NodeName: node, Method: "jwt"}
	r.Impersonated = impersonated
	return &r
}

func warmTracker(c *clock) *rotation.Tracker {
	return rotation.NewTracker(rotation.TrackerConfig{MaxLifetime: 2 * time.Hour, Now: c.now,
		Started: c.t.Add(-2 * time.Hour)})
}

func TestHoldersArePodsZtunnelIdentitiesOrIdentities(t *testing.T) {
	oldCA, newCA := genCA(t), genCA(t)
	cases := []struct {
		name string
		// before are the issuances before the rotation (old bundle), after those that renew with the new root.
		before, after func(t *testing.T, exp time.Time) []*ca.Result
		holders, done int
		coarse        int
		laggard       rotation.Laggard
	}{
		{
			name: "two pods of one service account are two holders, and the one not renewed is named",
			before: func(t *testing.T, exp time.Time) []*ca.Result {
				r := issued(t, oldCA, "cart", exp, oldCA.Root)
				return []*ca.Result{byPod(r, "uid-1", "cart-1", "node-a", false),
					byPod(r, "uid-2", "cart-2", "node-b", false)}
			},
			after: func(t *testing.T, exp time.Time) []*ca.Result {
				return []*ca.Result{byPod(issued(t, oldCA, "cart", exp, oldCA.Root, newCA.Root), "uid-1", "cart-1",
					"node-a", false)}
			},
			holders: 2, done: 1,
			laggard: rotation.Laggard{Identity: "cart-2", Kind: rotation.HolderPod, Namespace: "ns", Node: "node-b"},
		},
		{
			name: "one ztunnel acting for two identities is two holders",
			before: func(t *testing.T, exp time.Time) []*ca.Result {
				return []*ca.Result{byPod(issued(t, oldCA, "a", exp, oldCA.Root), "zt-1", "ztunnel-x", "node-a", true),
					byPod(issued(t, oldCA, "b", exp, oldCA.Root), "zt-1", "ztunnel-x", "node-a", true)}
			},
			after: func(t *testing.T, exp time.Time) []*ca.Result {
				return []*ca.Result{byPod(issued(t, oldCA, "a", exp, oldCA.Root, newCA.Root), "zt-1", "ztunnel-x",
					"node-a", true)}
			},
			holders: 2, done: 1,
			laggard: rotation.Laggard{Identity: "istio-system/ztunnel-x for spiffe://cluster.local/ns/ns/sa/b",
				Kind: rotation.HolderNodeAgent, Namespace: "ns", Node: "node-a"},
		},
		{
			name: "callers without pod claims are one holder per identity, counted as coarse",
			before: func(t *testing.T, exp time.Time) []*ca.Result {
				return []*ca.Result{issued(t, oldCA, "a", exp, oldCA.Root), issued(t, oldCA, "a", exp, oldCA.Root),
					issued(t, oldCA, "b", exp, oldCA.Root)}
			},
			after: func(t *testing.T, exp time.Time) []*ca.Result {
				return []*ca.Result{issued(t, oldCA, "a", exp, oldCA.Root, newCA.Root)}
			},
			holders: 2, done: 1, coarse: 2,
			laggard: rotation.Laggard{Identity: "spiffe://cluster.local/ns/ns/sa/b", Kind: rotation.HolderIdentity,
				Namespace: "ns"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: time.Now().Truncate(time.Second)}
			tr := warmTracker(c)
			for _, r := range tc.before(t, c.t.Add(time.Hour)) {
				tr.ObserveResult(r)
			}
			tr.SetTarget(newCA.Root)
			for _, r := range tc.after(t, c.t.Add(time.Hour)) {
				tr.ObserveResult(r)
			}
			p := tr.Progress(1, rotation.PhasePrepared)
			if p.Holders != tc.holders || p.HoldingNext != tc.done || p.Coarse != tc.coarse || len(p.Laggards) != 1 {
				t.Fatalf("holders %d, holding %d, coarse %d, laggards %+v; want %d, %d, %d and one laggard",
					p.Holders, p.HoldingNext, p.Coarse, p.Laggards, tc.holders, tc.done, tc.coarse)
			}
			l := p.Laggards[0]
			if l.Identity != tc.laggard.Identity || l.Kind != tc.laggard.Kind || l.Namespace != tc.laggard.Namespace ||
				l.Node != tc.laggard.Node {
				t.Errorf("laggard %+v, want %+v", l, tc.laggard)
			}
			if !l.LastRenewal.Equal(c.t) || !l.NextRenewal.Equal(c.t.Add(30*time.Minute)) || l.Bundle != 1 {
				t.Errorf("laggard renewed %s, next %s, bundle %d; want %s, 30 minutes later, and the first bundle",
					l.LastRenewal, l.NextRenewal, l.Bundle, c.t)
			}
		})
	}
}

// A pod that never renews holds the gate, as overdue once its renewal time has passed, until its certificate
// expires; the gate's ETA and latest opening follow it.
func TestOverduePodHoldsTheGateOnlyUntilItsCertificateExpires(t *testing.T) {
	oldCA, newCA := genCA(t), genCA(t)
	c := &clock{t: time.Now().Truncate(time.Second)}
	tr := warmTracker(c)
	start := c.t
	tr.ObserveResult(byPod(issued(t, oldCA, "stuck", start.Add(time.Hour), oldCA.Root), "u1", "stuck-0", "n1", false))
	tr.ObserveResult(byPod(issued(t, oldCA, "ok", start.Add(time.Hour), oldCA.Root), "u2", "ok-0", "n2", false))
	tr.SetTarget(newCA.Root)
	gate := func() rotation.GateProgress {
		p := tr.Progress(1, rotation.PhasePrepared)
		for _, g := range p.Gates {
			if g.Active {
				return g
			}
		}
		t.Fatalf("no active gate in %+v", p)
		return rotation.GateProgress{}
	}
	g := gate()
	if g.Lagging != 2 || g.Overdue != 0 || !g.ETA.Equal(start.Add(30*time.Minute)) ||
		!g.Latest.Equal(start.Add(time.Hour)) {
		t.Fatalf("before renewal time: %+v; want 2 lagging, ETA in 30 minutes, latest in an hour", g)
	}
	c.t = start.Add(40 * time.Minute)
	tr.ObserveResult(byPod(issued(t, oldCA, "ok", c.t.Add(time.Hour), oldCA.Root, newCA.Root), "u2", "ok-0", "n2",
		false))
	g = gate()
	if g.Done != 1 || g.Overdue != 1 || !g.ETA.Equal(start.Add(time.Hour)) || g.Percent() != 50 {
		t.Fatalf("after its renewal time: %+v; want 1 done, 1 overdue, ETA at its expiry", g)
	}
	if p := tr.Progress(1, rotation.PhasePrepared); len(p.Laggards) != 1 || !p.Laggards[0].Overdue ||
		p.Laggards[0].Identity != "stuck-0" || len(p.ByNode) != 1 ||
		p.ByNode[0] != (rotation.Count{Name: "n1", Count: 1}) {
		t.Fatalf("the overdue pod must be named with its node: %+v", p)
	}
	c.t = start.Add(time.Hour + time.Second)
	if g = gate(); g.Holders != 1 || g.Done != 1 {
		t.Fatalf("after its certificate expired: %+v; want only the renewed pod", g)
	}
}

// pod returns a Result for the i-th of many pods (200 namespaces, 100 nodes), sharing res's chain.
func pod(res *ca.Result, i int) *ca.Result {
	r := byPod(res, fmt.Sprintf("%08x-1b2c-4d5e-8f90-%012x", i, i), fmt.Sprintf("reviews-v1-5d8f7b9c4-%05d", i),
		fmt.Sprintf("gke-pool-1-node-%03d", i%100), false)
	r.Identity.Namespace = fmt.Sprintf("team-%03d", i%200)
	r.Identity.ServiceAccount = fmt.Sprintf("sa-%d", i) // distinct identities, for a comparison with identity holders
	r.Caller.Namespace = r.Identity.Namespace
	return r
}

func genCAb(b testing.TB) *file.Generated {
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func fill(t testing.TB, g *file.Generated, n int, exp time.Time) (*rotation.Tracker, []*ca.Result) {
	tr := rotation.NewTracker(rotation.TrackerConfig{MaxLifetime: 2 * time.Hour, MaxIdentities: n})
	base := issued(t, g, "reviews", exp, g.Root)
	rs := make([]*ca.Result, n)
	for i := range rs {
		rs[i] = pod(base, i)
	}
	return tr, rs
}

// heapAfterGC returns the live heap.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// 100k pod holders fit in a few MiB: the records, their names and the maps stay under 70 bytes a holder.
func TestTrackerMemoryPerHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100k holders")
	}
	g := genCA(t)
	const n = 100000
	tr, rs := fill(t, g, n, time.Now().Add(time.Hour))
	before := heapAfterGC()
	for _, r := range rs {
		tr.ObserveResult(r)
	}
	after := heapAfterGC()
	runtime.KeepAlive(rs)
	per := float64(after-before) / n
	t.Logf("%d holders: %.1f MiB, %.1f bytes a holder", n, float64(after-before)/(1<<20), per)
	if tr.Len() != n || per > 70 {
		t.Fatalf("%d holders tracked at %.1f bytes each; want %d at most 70", tr.Len(), per, n)
	}
}

// BenchmarkTrackerProgress computes the progress over 100k pod holders.
func BenchmarkTrackerProgress(b *testing.B) {
	g, next := genCAb(b), genCAb(b)
	tr, rs := fill(b, g, 100000, time.Now().Add(time.Hour))
	for _, r := range rs {
		tr.ObserveResult(r)
	}
	tr.SetTarget(next.Root)
	for b.Loop() {
		tr.Progress(1, rotation.PhasePrepared)
	}
}

// BenchmarkTrackerObserve renews 100k known pod holders in turn: the cost of ObserveResult on the request
// path, holder key included.
func BenchmarkTrackerObserve(b *testing.B) {
	g := genCAb(b)
	tr, rs := fill(b, g, 100000, time.Now().Add(time.Hour))
	for _, r := range rs {
		tr.ObserveResult(r)
	}
	i := 0
	for b.Loop() {
		tr.ObserveResult(rs[i%len(rs)])
		i++
	}
}

// BenchmarkTrackerObserveDuringProgress records issuances while Progress runs without pause over 100k pod
// holders, and reports the slowest ObserveResult: the longest an issuance waits for the progress computation.
func BenchmarkTrackerObserveDuringProgress(b *testing.B) {
	g, next := genCAb(b), genCAb(b)
	tr, rs := fill(b, g, 100000, time.Now().Add(time.Hour))
	for _, r := range rs {
		tr.ObserveResult(r)
	}
	tr.SetTarget(next.Root)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				tr.Progress(1, rotation.PhasePrepared)
			}
		}
	})
	var took []time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		tr.ObserveResult(rs[i%len(rs)])
		took = append(took, time.Since(start))
		i++
	}
	close(stop)
	wg.Wait()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs/observe")
	b.ReportMetric(float64(took[len(took)*999/1000].Microseconds()), "p99.9-µs/observe")
	b.ReportMetric(float64(took[len(took)-1].Microseconds()), "max-µs/observe")
}

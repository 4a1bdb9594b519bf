package expiry_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/csr"
	"github.com/prometheus/client_golang/prometheus"
)

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock    { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }

func newTracker(t *testing.T, cfg expiry.TrackerConfig) (*expiry.Tracker, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	tr, err := expiry.NewTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, reg
}

func identity(ns, sa string) csr.Identity {
	return csr.Identity{TrustDomain: catest.TrustDomain, Namespace: ns, ServiceAccount: sa}
}

func idLabels(id csr.Identity) string {
	return fmt.Sprintf(
		"namespace=%s,service_account=%s,trust_domain=%s",
		id.Namespace,
		id.ServiceAccount,
		id.TrustDomain,
	)
}

// The per-identity gauges carry the notAfter of the certificate a real backend issued, and the time it was
// issued; a renewal replaces them.
func TestIdentityGaugesMatchTheIssuedCertificate(t *testing.T) {
	dir, _ := catest.FileCA(t)
	backend := catest.FileBackend(t, dir, nil)
	clk := newClock(time.Now())
	tr, reg := newTracker(t, expiry.TrackerConfig{Now: clk.now})
	id := identity("shop", "cart")
	issue := func(ttl time.Duration) time.Time {
		t.Helper()
		key := catest.ECKey(t)
		resp, err := backend.Sign(context.Background(), &backends.SignRequest{PublicKey: key.Public(),
			URIs: []*url.URL{id.URI()}, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		leaf := resp.Leaf()
		tr.Observe(id, leaf.NotBefore, leaf.NotAfter)
		return leaf.NotAfter
	}
	for _, ttl := range []time.Duration{24 * time.Hour, 12 * time.Hour} {
		issuedAt := clk.now()
		notAfter := issue(ttl)
		if got := gather(t, reg, "meshca_identity_certificate_expiry_timestamp_seconds")[idLabels(id)]; got !=
			float64(notAfter.Unix()) {
			t.Errorf("ttl %s: expiry gauge %v, want the certificate's notAfter %v", ttl, got, notAfter.Unix())
		}
		if got := gather(t, reg, "meshca_identity_last_issuance_timestamp_seconds")[idLabels(id)]; got !=
			float64(issuedAt.Unix()) {
			t.Errorf("ttl %s: issuance gauge %v, want %v", ttl, got, issuedAt.Unix())
		}
		clk.add(time.Hour)
	}
	if n := len(gather(t, reg, "meshca_identity_certificate_expiry_timestamp_seconds")); n != 1 {
		t.Errorf("%d expiry series for one identity, want 1", n)
	}
}

// An identity whose agent stops renewing passes its renewal deadline at start + overdueAt of the certificate's
// Life: the deadline gauge says when, the overdue count turns 1 at that moment and not before, and a renewal
// clears it.
func TestStuckIdentityIsSignalledAtItsRenewalDeadline(t *testing.T) {
	tests := []struct {
		name      string
		overdueAt float64
		life      time.Duration
		want      time.Duration // deadline after issuance
	}{
		{"the default, 60% of a 24h certificate", 0, 24 * time.Hour, 14*time.Hour + 24*time.Minute},
		{"a configured 75% of a 1h certificate", 0.75, time.Hour, 45 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			tr, reg := newTracker(t, expiry.TrackerConfig{Now: clk.now, OverdueAt: tt.overdueAt})
			id := identity("shop", "cart")
			// notBefore backdated by a minute, as backends do for clock skew: the life counts from issuance.
			tr.Observe(id, t0.Add(-time.Minute), t0.Add(tt.life))
			deadline := gather(t, reg, "meshca_identity_renewal_deadline_timestamp_seconds")[idLabels(id)]
			if want := float64(t0.Add(tt.want).Unix()); deadline != want {
				t.Fatalf("deadline %v, want %v (%s after issuance)", deadline, want, tt.want)
			}
			overdue := func() float64 { return gather(t, reg, "meshca_identities_renewal_overdue")[""] }
			clk.set(t0.Add(tt.want - time.Second))
			if n := overdue(); n != 0 {
				t.Errorf("a second before the deadline: %v overdue, want 0", n)
			}
			clk.set(t0.Add(tt.want))
			if n := overdue(); n != 1 {
				t.Errorf("at the deadline: %v overdue, want 1", n)
			}
			tr.Observe(id, clk.now(), clk.now().Add(tt.life))
			if n := overdue(); n != 0 {
				t.Errorf("after renewal: %v overdue, want 0", n)
			}
		})
	}
}

// An identity whose latest certificate expired is kept for the grace period (so the stuck alert can still
// fire) and then dropped with all its series.
func TestExpiredIdentitiesAreDroppedAfterTheGracePeriod(t *testing.T) {
	clk := newClock(t0)
	tr, reg := newTracker(t, expiry.TrackerConfig{Now: clk.now, Grace: 30 * time.Minute})
	gone, kept := identity("shop", "gone"), identity("shop", "kept")
	tr.Observe(gone, t0, t0.Add(time.Hour))
	tr.Observe(kept, t0, t0.Add(24*time.Hour))
	expiryOf := func() map[string]float64 {
		return gather(t, reg, "meshca_identity_certificate_expiry_timestamp_seconds")
	}
	clk.set(t0.Add(time.Hour + 30*time.Minute))
	if _, ok := expiryOf()[idLabels(gone)]; !ok {
		t.Fatal("dropped before the end of the grace period")
	}
	if got := gather(t, reg, "meshca_identities_by_remaining_lifetime")["remaining=expired"]; got != 1 {
		t.Errorf("expired bucket %v, want 1", got)
	}
	clk.add(time.Second)
	series := expiryOf()
	if _, ok := series[idLabels(gone)]; ok {
		t.Error("still exported after the grace period")
	}
	if _, ok := series[idLabels(kept)]; !ok {
		t.Error("the valid identity was dropped too")
	}
	if n := tr.Len(); n != 1 {
		t.Errorf("Len %d, want 1", n)
	}
	for _, name := range []string{"meshca_identity_last_issuance_timestamp_seconds",
		"meshca_identity_renewal_deadline_timestamp_seconds"} {
		if n := len(gather(t, reg, name)); n != 1 {
			t.Errorf("%s: %d series, want 1", name, n)
		}
	}
}

// The cap on identities holds: issuances for identities past it are counted as dropped and export nothing;
// known identities still renew; once an expired identity is dropped there is room again.
func TestIdentityCapHolds(t *testing.T) {
	clk := newClock(t0)
	tr, reg := newTracker(t, expiry.TrackerConfig{Now: clk.now, MaxIdentities: 3, Grace: time.Minute})
	for i := range 5 {
		tr.Observe(identity("ns", fmt.Sprintf("sa%d", i)), t0, t0.Add(time.Duration(i+1)*time.Hour))
	}
	tr.Observe(identity("ns", "sa0"), t0, t0.Add(48*time.Hour)) // a renewal of a tracked identity
	if n := len(gather(t, reg, "meshca_identity_certificate_expiry_timestamp_seconds")); n != 3 {
		t.Errorf("%d identity series, want the cap of 3", n)
	}
	if got := gather(t, reg, "meshca_identity_series_dropped_total")[""]; got != 2 {
		t.Errorf("dropped %v, want 2", got)
	}
	if st, ok := tr.Lookup(identity("ns", "sa0")); !ok || !st.NotAfter.Equal(t0.Add(48*time.Hour)) {
		t.Errorf("renewal of a tracked identity at the cap: %+v, %v", st, ok)
	}
	clk.set(t0.Add(2*time.Hour + 2*time.Minute)) // sa1 expired past its grace
	tr.Observe(identity("ns", "new"), clk.now(), clk.now().Add(time.Hour))
	if _, ok := tr.Lookup(identity("ns", "new")); !ok {
		t.Error("a new identity was refused although an expired one could be dropped")
	}
	if n := tr.Len(); n != 3 {
		t.Errorf("Len %d, want 3", n)
	}
}

// A replayed issuance older than what the tracker holds does not replace it.
func TestObserveAtKeepsTheLatestIssuance(t *testing.T) {
	tr, _ := newTracker(t, expiry.TrackerConfig{Now: func() time.Time { return t0 }})
	id := identity("shop", "cart")
	tr.ObserveAt(id, t0, t0, t0.Add(24*time.Hour))
	tr.ObserveAt(id, t0.Add(-time.Hour), t0.Add(-time.Hour), t0.Add(23*time.Hour))
	st, _ := tr.Lookup(id)
	if !st.NotAfter.Equal(t0.Add(24 * time.Hour)) {
		t.Errorf("notAfter %v, want the later issuance's", st.NotAfter)
	}
}

// Identities are counted by the time left on their latest certificate, every bucket present even when empty.
func TestIdentitiesByRemainingLifetime(t *testing.T) {
	clk := newClock(t0)
	tr, reg := newTracker(t, expiry.TrackerConfig{Now: clk.now})
	for i, left := range []time.Duration{-time.Minute, 30 * time.Minute, 5 * time.Hour, 23 * time.Hour, 6 * day,
		8 * day, 90 * day} {
		tr.ObserveAt(identity("ns", fmt.Sprintf("sa%d", i)), t0.Add(-time.Hour), t0.Add(-time.Hour), t0.Add(left))
	}
	got := gather(t, reg, "meshca_identities_by_remaining_lifetime")
	want := map[string]float64{"remaining=expired": 1, "remaining=under_1h": 1, "remaining=under_6h": 1,
		"remaining=under_24h": 1, "remaining=under_7d": 1, "remaining=over_7d": 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("buckets %v, want %v", got, want)
	}
}

func TestTrackerConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  expiry.TrackerConfig
		ok   bool
	}{
		{"the zero value takes the defaults", expiry.TrackerConfig{}, true},
		{"overdueAt above 1 is refused", expiry.TrackerConfig{OverdueAt: 1.5}, false},
		{"a negative grace is refused", expiry.TrackerConfig{Grace: -time.Second}, false},
		{"a negative cap is refused", expiry.TrackerConfig{MaxIdentities: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate: %v", err)
			}
		})
	}
	reg := prometheus.NewRegistry()
	if _, err := expiry.NewTracker(expiry.TrackerConfig{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	_, err := expiry.NewTracker(expiry.TrackerConfig{Registerer: reg})
	if are := (prometheus.AlreadyRegisteredError{}); !errors.As(err, &are) {
		t.Errorf("second tracker on one registry: %v, want AlreadyRegisteredError", err)
	}
}

// Observations and scrapes from many goroutines at once (run with -race).
func TestTrackerConcurrentUse(t *testing.T) {
	tr, reg := newTracker(t, expiry.TrackerConfig{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				now := time.Now()
				tr.Observe(identity(fmt.Sprintf("ns%d", i%50), fmt.Sprintf("sa%d", g)), now, now.Add(time.Hour))
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if n := tr.Len(); n != 400 {
		t.Errorf("Len %d, want 400", n)
	}
}

// BenchmarkObserve measures the issuance-path cost of recording a renewal of a known identity.
func BenchmarkObserve(b *testing.B) {
	tr, err := expiry.NewTracker(expiry.TrackerConfig{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]csr.Identity, 1000)
	for i := range ids {
		ids[i] = identity(fmt.Sprintf("ns%d", i%100), fmt.Sprintf("sa%d", i))
		tr.Observe(ids[i], t0, t0.Add(time.Hour))
	}
	nb, na := time.Now(), time.Now().Add(24*time.Hour)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tr.Observe(ids[i%len(ids)], nb, na)
			i++
		}
	})
}

// BenchmarkObserveFirst measures an identity's first issuance (an insert).
func BenchmarkObserveFirst(b *testing.B) {
	tr, err := expiry.NewTracker(expiry.TrackerConfig{MaxIdentities: b.N + 1})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]csr.Identity, b.N)
	for i := range ids {
		ids[i] = identity("ns", fmt.Sprintf("sa%d", i))
	}
	nb, na := time.Now(), time.Now().Add(24*time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range ids {
		tr.Observe(ids[i], nb, na)
	}
}

package authn_test

import (
	"context"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca/authn"
)

// remoteKeys returns the key set of s's JWKS on clock, with cfg's settings.
func (s *keyServer) remoteKeys(t *testing.T, clock *fakeClock, mod func(*authn.RemoteKeysConfig)) *authn.RemoteKeys {
	t.Helper()
	cfg := authn.RemoteKeysConfig{Issuer: edgeIssuer, JWKSURL: s.URL + "/jwks", HTTPClient: s.Client(),
		Clock: clock.Now, Logger: discardLogger()}
	if mod != nil {
		mod(&cfg)
	}
	keys, err := authn.NewRemoteKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// fetchesAfter asks keys for kid and returns how many requests the server has had once the call returned.
func (s *keyServer) fetchesAfter(t *testing.T, keys *authn.RemoteKeys, kid string) int64 {
	t.Helper()
	_, _ = keys.Keys(context.Background(), kid)
	return s.fetches.Load()
}

func TestNewRemoteKeysChecksItsConfig(t *testing.T) {
	noPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(noPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  authn.RemoteKeysConfig
		ok   bool
	}{
		{"a JWKS URL alone is enough", authn.RemoteKeysConfig{JWKSURL: "https://k/jwks"}, true},
		{"an issuer alone is enough", authn.RemoteKeysConfig{Issuer: "https://k"}, true},
		{"an issuer with an https discovery URL is enough",
			authn.RemoteKeysConfig{Issuer: "https://kubernetes.default.svc", DiscoveryURL: "https://10.0.0.1:6443"},
			true},
		{"neither an issuer nor a JWKS URL is refused", authn.RemoteKeysConfig{}, false},
		{"a discovery URL over plain http is refused",
			authn.RemoteKeysConfig{Issuer: "https://k", DiscoveryURL: "http://10.0.0.1:6443"}, false},
		{"a discovery URL without a host is refused",
			authn.RemoteKeysConfig{Issuer: "https://k", DiscoveryURL: "https:///.well-known"}, false},
		{"an unparsable discovery URL is refused",
			authn.RemoteKeysConfig{Issuer: "https://k", DiscoveryURL: "https://k/%zz"}, false},
		{"a discovery URL without the issuer it must name is refused",
			authn.RemoteKeysConfig{JWKSURL: "https://k/jwks", DiscoveryURL: "https://10.0.0.1:6443"}, false},
		{"a negative timeout is refused", authn.RemoteKeysConfig{Issuer: "https://k", Timeout: -time.Second}, false},
		{"a CA file that does not exist is refused",
			authn.RemoteKeysConfig{Issuer: "https://k", CAFile: "/nonexistent/ca.pem"}, false},
		{"a CA file without a certificate is refused", authn.RemoteKeysConfig{Issuer: "https://k", CAFile: noPEM},
			false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := authn.NewRemoteKeys(tt.cfg); (err == nil) != tt.ok {
				t.Fatalf("NewRemoteKeys: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestRemoteKeysTrustTheirCAFile: without an HTTP client, the JWKS server is verified with CAFile.
func TestRemoteKeysTrustTheirCAFile(t *testing.T) {
	s := newKeyServer(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE",
		Bytes: s.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := s.remoteKeys(t, newFakeClock(), func(c *authn.RemoteKeysConfig) { c.HTTPClient, c.CAFile = nil, caFile })
	if got, err := keys.Keys(context.Background(), "k1"); err != nil || len(got) != 1 {
		t.Fatalf("Keys = %d keys, %v; want the server's key, verified with the CA file", len(got), err)
	}
}

// TestRemoteKeysTakeANewKeyOnFirstSight: a token signed with a key the issuer just added authenticates at its
// first request, which waits for the refresh its unknown kid starts.
func TestRemoteKeysTakeANewKeyOnFirstSight(t *testing.T) {
	s := newKeyServer(t)
	clock := newFakeClock()
	keys := s.remoteKeys(t, clock, nil)
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: edgeIssuer, Keys: keys}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := j.Authenticate(ctx, &authn.Request{Token: s.token(t, edgeIssuer, "k1")}); err != nil {
		t.Fatal(err)
	}
	rotated := s.token(t, edgeIssuer, "k2") // adds k2 to the server's set
	clock.Add(10 * time.Second)             // the default MinRefresh
	if _, err := j.Authenticate(ctx, &authn.Request{Token: rotated}); err != nil {
		t.Fatalf("a token of the newly added key k2: %v, want it verified after one refresh", err)
	}
}

// TestRemoteKeysDefaultIntervals: by default an unknown kid refreshes at most every 10s and known keys are
// refreshed in the background once older than 5m.
func TestRemoteKeysDefaultIntervals(t *testing.T) {
	s := newKeyServer(t)
	clock := newFakeClock()
	keys := s.remoteKeys(t, clock, nil)
	steps := []struct {
		name    string
		advance time.Duration
		kid     string
		want    int64
	}{
		{"the first use fetches", 0, "k1", 1},
		{"an unknown kid at once does not refetch", 0, "unknown", 1},
		{"an unknown kid just under 10s later does not refetch", 10*time.Second - time.Nanosecond, "unknown", 1},
		{"an unknown kid 10s after the last fetch refetches", time.Nanosecond, "unknown", 2},
	}
	for _, st := range steps {
		clock.Add(st.advance)
		if got := s.fetchesAfter(t, keys, st.kid); got != st.want {
			t.Fatalf("%s: %d fetches, want %d", st.name, got, st.want)
		}
	}
	s.drain()
	clock.Add(5 * time.Minute)
	if _, err := keys.Keys(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
	s.noRequestWithin(t, 200*time.Millisecond, "keys exactly 5m old")
	clock.Add(time.Nanosecond)
	if _, err := keys.Keys(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.requests:
	case <-time.After(5 * time.Second):
		t.Fatal("keys older than 5m: no background refresh within 5s")
	}
}

// TestRemoteKeysBackoffSchedule: after failures, refreshes wait MinRefresh, then twice as long after each
// further failure, up to 32 × MinRefresh; the wait is over at exactly its length.
func TestRemoteKeysBackoffSchedule(t *testing.T) {
	s := newKeyServer(t)
	clock := newFakeClock()
	keys := s.remoteKeys(t, clock, func(c *authn.RemoteKeysConfig) { c.MinRefresh, c.Refresh = time.Second, time.Hour })
	if got := s.fetchesAfter(t, keys, "k1"); got != 1 {
		t.Fatalf("first use: %d fetches, want 1", got)
	}
	s.fail.Store(true)
	// The wait before attempt n+1 after n consecutive failures (0: after the successful first fetch).
	for failures, wait := range []time.Duration{1, 1, 2, 4, 8, 16, 32, 32, 32} {
		wait *= time.Second
		before := s.fetches.Load()
		clock.Add(wait - time.Nanosecond)
		if got := s.fetchesAfter(t, keys, "unknown"); got != before {
			t.Fatalf("after %d failures, %s later: %d fetches, want none before the %s backoff", failures,
				wait-time.Nanosecond, got-before, wait)
		}
		clock.Add(time.Nanosecond)
		if got := s.fetchesAfter(t, keys, "unknown"); got != before+1 {
			t.Fatalf("after %d failures, %s later: %d fetches, want one", failures, wait, got-before)
		}
	}
}

// TestRemoteKeysLogFailuresByUsability: a failed refresh is a warning while the cached keys are still usable
// (up to exactly MaxStale old) and an error once they are not.
func TestRemoteKeysLogFailuresByUsability(t *testing.T) {
	s := newKeyServer(t)
	clock := newFakeClock()
	rec := &levelRecorder{}
	keys := s.remoteKeys(t, clock, func(c *authn.RemoteKeysConfig) {
		c.MaxStale, c.Refresh, c.MinRefresh, c.Logger = time.Hour, time.Minute, time.Second, slog.New(rec)
	})
	ctx := context.Background()
	if _, err := keys.Keys(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	s.fail.Store(true)
	clock.Add(time.Hour)
	if _, err := keys.Keys(ctx, "k1"); err != nil {
		t.Fatalf("keys exactly MaxStale old: %v, want them served", err)
	}
	if r := rec.wait(t, 1); r.Level != slog.LevelWarn {
		t.Fatalf("a failed refresh with keys exactly MaxStale old logged %s %q, want a warning", r.Level, r.Message)
	}
	clock.Add(time.Second)
	if _, err := keys.Keys(ctx, "k1"); !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("keys past MaxStale with the endpoint down: %v, want ErrUnavailable", err)
	}
	if r := rec.wait(t, 2); r.Level != slog.LevelError {
		t.Fatalf("a failed refresh with no usable keys logged %s %q, want an error", r.Level, r.Message)
	}
}

// TestRemoteKeysServeKeysUpToMaxStaleOldAtOnce: keys exactly MaxStale old are still served from the cache,
// without waiting for the refresh they start, even while the endpoint hangs.
func TestRemoteKeysServeKeysUpToMaxStaleOldAtOnce(t *testing.T) {
	s := newKeyServer(t)
	clock := newFakeClock()
	keys := s.remoteKeys(t, clock, func(c *authn.RemoteKeysConfig) { c.MaxStale, c.Refresh = time.Hour, time.Minute })
	if _, err := keys.Keys(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
	s.hang.Store(true)
	clock.Add(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if got, err := keys.Keys(ctx, "k1"); err != nil || len(got) != 1 {
		t.Fatalf("keys exactly MaxStale old, endpoint hanging: %d keys, %v; want the cached key at once", len(got),
			err)
	}
}

// TestKeysMetricsRecordTheLastSuccessInUnixSeconds: the last-success gauge is the fetch's time in seconds.
func TestKeysMetricsRecordTheLastSuccessInUnixSeconds(t *testing.T) {
	s := newKeyServer(t)
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	m, err := authn.NewKeysMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	keys := s.remoteKeys(t, clock, func(c *authn.RemoteKeysConfig) { c.Metrics = m })
	if _, err := keys.Keys(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "meshca_jwks_last_success_timestamp_seconds" {
			if got, want := mf.GetMetric()[0].GetGauge().GetValue(), float64(clock.Now().Unix()); got != want {
				t.Fatalf("last success %g, want %g (the fetch's Unix time)", got, want)
			}
			return
		}
	}
	t.Fatal("no meshca_jwks_last_success_timestamp_seconds")
}

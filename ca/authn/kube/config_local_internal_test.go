package kube

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshca/meshca/ca/authn"
)

// TestNewBuildsTheLocalTokenReview: New wires the TokenReview of meshca's own cluster as configured (cluster
// ID, maximum token lifetime, metrics, withIssuers) without contacting the API server.
func TestNewBuildsTheLocalTokenReview(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{ClusterID: "c7", TokenReview: &TokenReviewConfig{WithIssuers: authn.CombineConfirm}}
	a, err := New(t.Context(), cfg, Deps{Client: unreachableClient(t), Registerer: reg, MaxTokenLifetime: time.Hour,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Authenticators) != 1 || a.Combine != authn.CombineConfirm || a.Impersonator != nil {
		t.Fatalf("New = %+v; want one TokenReview, combine confirm and no node agents", a)
	}
	tr, ok := a.Authenticators[0].(*TokenReview)
	if !ok {
		t.Fatalf("authenticator is a %T, want *TokenReview", a.Authenticators[0])
	}
	now := time.Now()
	long := signToken(t, tokenClaims{sub: "system:serviceaccount:ns:sa", iat: now, exp: now.Add(90 * time.Minute)})
	tests := []struct {
		name, token, clusterID string
		want                   error
	}{
		{"a token longer-lived than Deps.MaxTokenLifetime is refused", long, "", authn.ErrUnauthenticated},
		{"the configured cluster's token is sent", liveToken(t, now), "c7", authn.ErrUnavailable},
		{"the default cluster's token is refused", liveToken(t, now), authn.DefaultClusterID,
			authn.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tr.Authenticate(t.Context(), &authn.Request{Token: tt.token, ClusterID: tt.clusterID})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Authenticate: %v, want %v", err, tt.want)
			}
		})
	}
	if n, err := testutil.GatherAndCount(reg, "meshca_tokenreview_requests_total"); err != nil || n != 2 {
		t.Fatalf("%d series of meshca_tokenreview_requests_total on the registry (%v), want 2", n, err)
	}
	if _, err := New(t.Context(), Config{QPS: -1}, Deps{Client: unreachableClient(t)}); err == nil {
		t.Fatal("New accepted an invalid configuration")
	}
	tr0 := &TokenReviewConfig{}
	if _, err := New(t.Context(), Config{TokenReview: tr0}, Deps{Client: unreachableClient(t)}); err != nil {
		t.Fatalf("New without a logger: %v", err)
	}
	if a, err := New(t.Context(), Config{}, Deps{Client: unreachableClient(t)}); err != nil ||
		len(a.Authenticators) != 0 || a.Impersonator != nil {
		t.Fatalf("New of an empty section = %+v, %v; want nothing enabled", a, err)
	}
}

// TestConfigWithDefaults: the defaults printed are New's, and the caller's TokenReview section is not changed.
func TestConfigWithDefaults(t *testing.T) {
	tr := &TokenReviewConfig{}
	c := Config{TokenReview: tr}.WithDefaults()
	if c.ClusterID != authn.DefaultClusterID || c.TokenReview == tr || c.TokenReview.CacheSize != 4096 ||
		tr.CacheSize != 0 {
		t.Fatalf("WithDefaults = %+v (TokenReview %+v, the caller's %+v)", c, c.TokenReview, tr)
	}
	if c := (Config{ClusterID: "c7"}).WithDefaults(); c.ClusterID != "c7" || c.TokenReview != nil {
		t.Fatalf("WithDefaults = %+v; want the cluster ID kept and no TokenReview added", c)
	}
	if err := (&Config{Burst: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "kubernetes.burst") {
		t.Fatalf("Validate of a negative burst: %v", err)
	}
}

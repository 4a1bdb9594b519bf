package kube_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/authn/kube"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     kube.Config
		mention []string // config keys the error must name; none: valid
	}{
		{"an empty section (in-cluster, nothing enabled) is valid", kube.Config{}, nil},
		{"TokenReview, remote clusters and ztunnel are valid", kube.Config{TokenReview: &kube.TokenReviewConfig{},
			RemoteSecretsNamespace: "istio-system", TrustedNodeAccounts: []string{"istio-system/ztunnel"}}, nil},
		{"remote clusters without TokenReview are refused", kube.Config{RemoteSecretsNamespace: "istio-system"},
			[]string{"remoteSecretsNamespace"}},
		{"a node account without its namespace is refused", kube.Config{TrustedNodeAccounts: []string{"ztunnel"}},
			[]string{"kubernetes.trustedNodeAccounts", `"ztunnel"`}},
		{"a node account with two slashes is refused", kube.Config{TrustedNodeAccounts: []string{"a/b/c"}},
			[]string{"kubernetes.trustedNodeAccounts", `"a/b/c"`}},
		{"TokenReview tunables out of range are refused", kube.Config{TokenReview: &kube.TokenReviewConfig{
			Audiences: []string{""}, CacheSize: -1, Timeout: -1}},
			[]string{"kubernetes.tokenReview.audiences", "kubernetes.tokenReview.cacheSize",
				"kubernetes.tokenReview.timeout"}},
		{"flood tunables out of range are refused", kube.Config{QPS: -1, TokenReview: &kube.TokenReviewConfig{
			NegativeCacheSize: -1, MaxConcurrentReviews: -1, WithIssuers: "both"}},
			[]string{"kubernetes.qps", "negativeCacheSize", "kubernetes.tokenReview.maxConcurrentReviews",
				"kubernetes.tokenReview.withIssuers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (len(tt.mention) == 0) {
				t.Fatalf("Validate: %v, want an error naming %v", err, tt.mention)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not name %s", err, m)
				}
			}
		})
	}
}

func TestNewNeedsAClient(t *testing.T) {
	cfg := kube.Config{TokenReview: &kube.TokenReviewConfig{}}
	if _, err := kube.New(context.Background(), cfg, kube.Deps{}); err == nil {
		t.Fatal("New accepted no Kubernetes client")
	}
}

// TestLimitSetsClientRateLimits: meshca's clients to an API server get the configured QPS and burst, or
// defaults well above client-go's 5 and 10, which would throttle TokenReviews.
func TestLimitSetsClientRateLimits(t *testing.T) {
	var rc rest.Config
	(&kube.Config{}).Limit(&rc)
	if rc.QPS != kube.DefaultQPS || rc.Burst != kube.DefaultBurst {
		t.Fatalf("defaults: QPS %g burst %d, want %d and %d", rc.QPS, rc.Burst, kube.DefaultQPS, kube.DefaultBurst)
	}
	(&kube.Config{QPS: 7, Burst: 9}).Limit(&rc)
	if rc.QPS != 7 || rc.Burst != 9 {
		t.Fatalf("configured: QPS %g burst %d, want 7 and 9", rc.QPS, rc.Burst)
	}
}

package kube_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/catest"
)

// New with node agents and remote secrets starts both against the API server and returns them wired in: a
// MultiCluster around the local TokenReview, and the node agents as the impersonation check. (The admin client:
// meshca's RBAC in catest lists Secrets only in istio-system.)
func TestNewStartsNodeAgentsAndRemoteSecrets(t *testing.T) {
	k := catest.SharedKube(t)
	ns := k.Namespace(t)
	cfg := kube.Config{TokenReview: &kube.TokenReviewConfig{}, RemoteSecretsNamespace: ns,
		TrustedNodeAccounts: []string{"istio-system/ztunnel"}}
	a, err := kube.New(t.Context(), cfg, kube.Deps{Client: k.Client,
		Registerer: prometheus.NewRegistry(), MaxTokenLifetime: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if a == nil || len(a.Authenticators) != 1 || a.Impersonator == nil {
		t.Fatalf("New = %+v; want one authenticator and the node agents", a)
	}
	if _, ok := a.Authenticators[0].(*kube.MultiCluster); !ok {
		t.Fatalf("authenticator is a %T, want *kube.MultiCluster", a.Authenticators[0])
	}
}

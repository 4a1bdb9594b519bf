package kube

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/authn"
)

// kubeconfigFor is a remote secret's kubeconfig for an API server at server with user's settings (YAML flow
// mapping); the default is an inline token.
func kubeconfigFor(server, user string) []byte {
	if user == "" {
		user = "{token: abc}"
	}
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: remote
  cluster: {server: %q}
users:
- name: remote
  user: %s
contexts:
- name: remote
  context: {cluster: remote, user: remote}
current-context: remote
`, server, user)
}

// localMultiCluster is a MultiCluster for local cluster "local", whose API servers (local and remote) do not
// exist; the secrets are applied by hand, as the informer would.
func localMultiCluster(t *testing.T) (*MultiCluster, *localReview) {
	t.Helper()
	local := newLocalReview(t, func(c *TokenReviewConfig) { c.ClusterID = "local" })
	m, err := NewMultiCluster(MultiClusterConfig{Client: unreachableClient(t), Namespace: "istio-system",
		LocalClusterID: "local", Local: local, Review: TokenReviewConfig{Clock: func() time.Time { return local.now }},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return m, local
}

// TestMultiClusterAppliesRemoteSecrets: which clusters a remote secret adds, keeps, replaces and removes.
func TestMultiClusterAppliesRemoteSecrets(t *testing.T) {
	kc := kubeconfigFor("https://127.0.0.1:1", "")
	other := kubeconfigFor("https://127.0.0.2:1", "")
	t.Run("a secret adds its clusters and takes them away when it goes", func(t *testing.T) {
		m, _ := localMultiCluster(t)
		m.apply("istio-system/s1", map[string][]byte{"r2": kc, "r1": kc})
		if got := m.Clusters(); !slices.Equal(got, []string{"local", "r1", "r2"}) {
			t.Fatalf("clusters %v, want local, r1, r2", got)
		}
		if id := m.clusters["r1"].auth.cfg.ClusterID; id != "r1" {
			t.Fatalf("the reviewer of r1 is for cluster %q", id)
		}
		m.apply("istio-system/s1", map[string][]byte{"r1": kc})
		if got := m.Clusters(); !slices.Equal(got, []string{"local", "r1"}) {
			t.Fatalf("clusters %v after r2 left the secret, want local, r1", got)
		}
		m.apply("istio-system/s1", nil)
		if got := m.Clusters(); !slices.Equal(got, []string{"local"}) || len(m.bySecret) != 0 {
			t.Fatalf("clusters %v (secrets %v) after the secret was deleted, want local only", got, m.bySecret)
		}
	})
	t.Run("a secret cannot claim the local cluster's ID", func(t *testing.T) {
		m, _ := localMultiCluster(t)
		m.apply("istio-system/s1", map[string][]byte{"local": kc})
		if len(m.clusters) != 0 || len(m.bySecret) != 0 {
			t.Fatalf("the local cluster's ID was taken by a remote secret: %v", m.clusters)
		}
	})
	t.Run("a secret cannot take over a cluster another secret provides", func(t *testing.T) {
		m, _ := localMultiCluster(t)
		m.apply("istio-system/s1", map[string][]byte{"r1": kc})
		first := m.clusters["r1"]
		m.apply("istio-system/s2", map[string][]byte{"r1": other})
		if m.clusters["r1"] != first {
			t.Fatal("a second secret replaced the cluster of the first")
		}
		m.apply("istio-system/s2", nil)
		if m.clusters["r1"] != first {
			t.Fatal("deleting the second secret removed the cluster of the first")
		}
	})
	t.Run("an unchanged kubeconfig keeps its reviewer and cache, a changed one gets a new one", func(t *testing.T) {
		m, _ := localMultiCluster(t)
		m.apply("istio-system/s1", map[string][]byte{"r1": kc})
		first := m.clusters["r1"].auth
		m.apply("istio-system/s1", map[string][]byte{"r1": kc})
		if m.clusters["r1"].auth != first {
			t.Fatal("an unchanged kubeconfig replaced the reviewer")
		}
		m.apply("istio-system/s1", map[string][]byte{"r1": other})
		if m.clusters["r1"].auth == first {
			t.Fatal("a changed kubeconfig kept the old reviewer")
		}
	})
	t.Run("an unusable kubeconfig is logged as an error, a usable one as info", func(t *testing.T) {
		m, _ := localMultiCluster(t)
		logged := newLevels()
		m.cfg.Logger = slog.New(logged)
		m.apply("istio-system/s1", map[string][]byte{"broken": kubeconfigFor("https://127.0.0.1:1", "{tokenFile: /t}")})
		if logged.count(slog.LevelError) != 1 || logged.count(slog.LevelInfo) != 0 {
			t.Fatalf("logged %v for an unusable kubeconfig, want one error", logged.n)
		}
		m.apply("istio-system/s2", map[string][]byte{"r1": kc})
		if logged.count(slog.LevelError) != 1 || logged.count(slog.LevelInfo) != 1 {
			t.Fatalf("logged %v after a usable kubeconfig, want one info more", logged.n)
		}
	})
	t.Run("objects that are not secrets are ignored", func(t *testing.T) {
		m, _ := localMultiCluster(t)
		m.update("not a secret")
		if len(m.clusters) != 0 {
			t.Fatal("a non-secret added clusters")
		}
	})
}

// TestMultiClusterRoutesByClusterID: each token goes to its cluster's reviewer, and only there.
func TestMultiClusterRoutesByClusterID(t *testing.T) {
	m, local := localMultiCluster(t)
	m.apply("istio-system/s1", map[string][]byte{"r1": kubeconfigFor("https://127.0.0.1:1", ""),
		"broken": kubeconfigFor("https://127.0.0.1:1", "{tokenFile: /var/run/secrets/token}")})
	if got := m.Clusters(); !slices.Equal(got, []string{"local", "r1"}) {
		t.Fatalf("clusters %v, want local and r1 (the unusable one left out)", got)
	}
	cached := liveToken(t, local.now)
	local.store(keyOf(cached), cached, &reviewResult{caller: &authn.Caller{Namespace: "ns", ServiceAccount: "sa"}})
	for _, id := range []string{"", "local"} {
		c, err := m.Authenticate(t.Context(), &authn.Request{Token: cached, ClusterID: id})
		if err != nil || c.ClusterID != "local" || c.Namespace != "ns" {
			t.Fatalf("clusterid %q: Authenticate = %+v, %v; want the local cluster's caller", id, c, err)
		}
	}
	tests := []struct {
		name, clusterID string
		token           string
		want            error
	}{
		{"no token is no credential", "r1", "", authn.ErrNoCredential},
		{"an unknown cluster is refused", "r9", cached, authn.ErrUnauthenticated},
		{"a cluster whose kubeconfig is unusable is unavailable", "broken", cached, authn.ErrUnavailable},
		{"a local token refused locally stays refused", "", "a.b.c", authn.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := m.Authenticate(t.Context(), &authn.Request{Token: tt.token, ClusterID: tt.clusterID})
			if c != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Authenticate = %v, %v; want %v", c, err, tt.want)
			}
		})
	}
	t.Run("a remote cluster's token is reviewed by that cluster", func(t *testing.T) {
		_, err := m.Authenticate(t.Context(), &authn.Request{Token: cached, ClusterID: "r1"})
		if !errors.Is(err, authn.ErrUnavailable) || m.clusters["r1"].auth.Stats().Reviews != 1 ||
			local.Stats().Reviews != 0 {
			t.Fatalf("Authenticate: %v; want one review by r1 (ErrUnavailable) and none by the local cluster", err)
		}
	})
}

// TestRemoteKubeconfigsCarryEverythingInline: a remote secret can neither run commands in meshca's container
// nor point meshca at files (its own token, keys).
func TestRemoteKubeconfigsCarryEverythingInline(t *testing.T) {
	var limited []string
	m, _ := localMultiCluster(t)
	m.cfg.Limit = func(rc *rest.Config) { limited = append(limited, rc.Host) }
	tests := []struct {
		name, user, cluster string
		refused             bool
	}{
		{"an inline token is used", "", "", false},
		{"an exec plugin is refused", "{exec: {command: /bin/sh, apiVersion: client.authentication.k8s.io/v1}}", "",
			true},
		{"an auth-provider plugin is refused", "{auth-provider: {name: oidc}}", "", true},
		{"a token file is refused", "{tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}", "", true},
		{"a client certificate file is refused", "{client-certificate: /etc/c.pem}", "", true},
		{"a client key file is refused", "{client-key: /etc/k.pem}", "", true},
		{"a CA file is refused", "", "/etc/ca.pem", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc := kubeconfigFor("https://127.0.0.1:1", tt.user)
			if tt.cluster != "" {
				kc = []byte(strings.Replace(string(kc), "{server: ",
					"{certificate-authority: "+tt.cluster+", server: ", 1))
			}
			limited = nil
			_, err := m.newReviewer("r1", kc)
			if (err != nil) != tt.refused {
				t.Fatalf("newReviewer: %v, want refused %v", err, tt.refused)
			}
			if !tt.refused && !slices.Equal(limited, []string{"https://127.0.0.1:1"}) {
				t.Fatalf("rate limits applied to %v, want the remote cluster's client", limited)
			}
		})
	}
	if _, err := m.newReviewer("r1", []byte("{not yaml")); err == nil {
		t.Fatal("an unparsable kubeconfig was used")
	}
}

// TestNewMultiClusterDefaults: the settings left out.
func TestNewMultiClusterDefaults(t *testing.T) {
	m, err := NewMultiCluster(MultiClusterConfig{Client: unreachableClient(t), Namespace: "istio-system",
		Local: newLocalReview(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if m.cfg.LocalClusterID != authn.DefaultClusterID || m.cfg.SyncTimeout != time.Minute ||
		m.cfg.Logger == nil || m.cfg.Review.Logger != m.cfg.Logger {
		t.Fatalf("defaults: %+v", m.cfg)
	}
	if got := m.Clusters(); !slices.Equal(got, []string{authn.DefaultClusterID}) {
		t.Fatalf("clusters %v, want the local one", got)
	}
	if _, err := NewMultiCluster(MultiClusterConfig{}); err == nil {
		t.Fatal("NewMultiCluster accepted an empty configuration")
	}
}

package kube_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/catest"
)

// remoteKubeconfig is a kubeconfig for k with its credentials inline, as istioctl create-remote-secret writes.
func remoteKubeconfig(t *testing.T, k *catest.Kube, user string) []byte {
	t.Helper()
	ca, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: remote
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: remote
  user: %s
contexts:
- name: remote
  context: {cluster: remote, user: remote}
current-context: remote
`, k.URL, base64.StdEncoding.EncodeToString(ca), user)
}

func remoteSecret(name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{kube.RemoteSecretLabel: "true"}}, Data: data}
}

// waitClusters waits until m knows exactly want.
func waitClusters(t *testing.T, m *kube.MultiCluster, want ...string) {
	t.Helper()
	slices.Sort(want)
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		got := m.Clusters()[1:]
		if slices.Equal(got, want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("remote clusters %v after 10s, want %v", m.Clusters()[1:], want)
}

func TestMultiClusterRoutesTokensByClusterID(t *testing.T) {
	a := catest.SharedKube(t)
	start := time.Now()
	b := catest.StartKube(t)
	t.Logf("second cluster (etcd + kube-apiserver) ready in %s", time.Since(start).Round(time.Millisecond))
	ns := a.Namespace(t) // where the remote secrets live
	wa := newWorkload(t, a, ns, "app-a", "node-a-"+ns)
	bns := b.Namespace(t)
	wb := newWorkload(t, b, bns, "app-b", "node-b")
	tokA, tokB := mintToken(t, a.Client, wa, authn.DefaultAudience), mintToken(t, b.Client, wb, authn.DefaultAudience)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c clock
	local := newTokenReview(t, meshcaConfig(t, a), &c, nil)
	m, err := kube.NewMultiCluster(kube.MultiClusterConfig{Client: a.Client, Namespace: ns, Local: local,
		Review: kube.TokenReviewConfig{Clock: c.now}, Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	auth := func(tok, cluster string) (*authn.Caller, error) {
		return m.Authenticate(ctx, &authn.Request{Token: tok, ClusterID: cluster})
	}
	accept := func(tok, cluster, wantNS string) {
		t.Helper()
		caller, err := auth(tok, cluster)
		if err != nil {
			t.Fatalf("token of %s with clusterid %q: %v", wantNS, cluster, err)
		}
		want := cluster
		if want == "" {
			want = authn.DefaultClusterID
		}
		if caller.Namespace != wantNS || caller.ClusterID != want {
			t.Fatalf("caller %s (cluster %q), want %s (cluster %q)", caller.Namespace, caller.ClusterID, wantNS, want)
		}
	}
	refuse := func(tok, cluster string, kind error) {
		t.Helper()
		_, err := auth(tok, cluster)
		if !errors.Is(err, kind) {
			t.Fatalf("clusterid %q: %v, want %v", cluster, err, kind)
		}
		t.Logf("refused (clusterid %q): %v", cluster, err)
	}

	accept(tokA, authn.DefaultClusterID, ns)
	accept(tokA, "", ns)
	refuse(tokB, "cluster-b", authn.ErrUnauthenticated) // no secret yet

	secrets := a.Client.CoreV1().Secrets(ns)
	created := time.Now()
	bUser := fmt.Sprintf("{token: %q}", b.Config.BearerToken)
	if _, err := secrets.Create(ctx, remoteSecret("istio-remote-secret-b", map[string][]byte{
		"cluster-b": remoteKubeconfig(t, b, bUser)}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitClusters(t, m, "cluster-b")
	t.Logf("remote secret took effect %s after its create request was sent", time.Since(created))
	accept(tokB, "cluster-b", bns)
	refuse(tokB, authn.DefaultClusterID, authn.ErrUnauthenticated) // cluster A's API server cannot verify B's token
	refuse(tokB, "", authn.ErrUnauthenticated)
	refuse(tokA, "cluster-b", authn.ErrUnauthenticated) // nor B's A's
	refuse(tokB, "cluster-c", authn.ErrUnauthenticated)

	// A Secret without the label is not a remote secret.
	unlabelled := remoteSecret("not-remote", map[string][]byte{"cluster-x": remoteKubeconfig(t, b, bUser)})
	unlabelled.Labels = nil
	if _, err := secrets.Create(ctx, unlabelled, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A kubeconfig with an exec plugin would run a command in meshca's container: refused.
	if _, err := secrets.Create(ctx, remoteSecret("istio-remote-secret-evil", map[string][]byte{
		"cluster-evil": remoteKubeconfig(t, b,
			`{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: ["-c", "id"]}}`)}),
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := auth(tokB, "cluster-evil")
		if errors.Is(err, authn.ErrUnavailable) && strings.Contains(err.Error(), "exec") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster with an exec kubeconfig: %v, want ErrUnavailable naming the exec plugin", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := auth(tokB, "cluster-x"); !errors.Is(err, authn.ErrUnauthenticated) {
		t.Fatalf("cluster from an unlabelled Secret: %v, want unknown", err)
	}

	// Renaming the cluster in the secret: the old ID is gone, the new one works.
	s, err := secrets.Get(ctx, "istio-remote-secret-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{"cluster-b2": s.Data["cluster-b"]}
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitClusters(t, m, "cluster-b2")
	accept(tokB, "cluster-b2", bns)
	refuse(tokB, "cluster-b", authn.ErrUnauthenticated)

	// Deleting the secret removes the cluster.
	if err := secrets.Delete(ctx, "istio-remote-secret-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitClusters(t, m)
	refuse(tokB, "cluster-b2", authn.ErrUnauthenticated)
	accept(tokA, authn.DefaultClusterID, ns)
}

func TestMultiClusterConfigValidate(t *testing.T) {
	cfg := kube.MultiClusterConfig{SyncTimeout: -1}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted an empty config")
	}
	for _, want := range []string{"client", "namespace", "local cluster", "timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

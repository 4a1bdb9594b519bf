package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"
	authv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/manifests"
)

// shippedRotation returns the rotation: section of components/root-rotation/config.yaml.
func shippedRotation(t *testing.T) map[string]any {
	t.Helper()
	var cfg struct {
		Rotation map[string]any `json:"rotation"`
	}
	if err := yaml.Unmarshal(manifests.RootRotationConfig, &cfg); err != nil || cfg.Rotation == nil {
		t.Fatalf("components/root-rotation/config.yaml has no rotation: section (%v)", err)
	}
	return cfg.Rotation
}

// applyRotationRBAC applies components/root-rotation/rbac.yaml (on top of the base RBAC that meshcaKubeconfig
// applies) until the test ends, and removes the rotation's objects before and after.
func applyRotationRBAC(t *testing.T, k *catest.Kube, rot map[string]any) {
	t.Helper()
	ctx := context.Background()
	ns, cm, lease := rot["leaseNamespace"].(string), rot["configMap"].(string), rot["leaseName"].(string)
	clean := func() {
		_ = k.Client.CoreV1().ConfigMaps(ns).Delete(ctx, cm, metav1.DeleteOptions{})
		_ = k.Client.CoreV1().ConfigMaps(ns).Delete(ctx, cm+"-replicas", metav1.DeleteOptions{})
		_ = k.Client.CoordinationV1().Leases(ns).Delete(ctx, lease, metav1.DeleteOptions{})
	}
	clean()
	objs, err := catest.DecodeYAML(manifests.RootRotationRBAC)
	if err != nil {
		t.Fatal(err)
	}
	if err := catest.Apply(ctx, k.Config, objs, catest.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		clean()
		_ = k.Client.RbacV1().RoleBindings(ns).Delete(ctx, "meshca-rotation", metav1.DeleteOptions{})
		_ = k.Client.RbacV1().Roles(ns).Delete(ctx, "meshca-rotation", metav1.DeleteOptions{})
	})
	// Wait until every rule of the Role is in force (the RBAC authorizer works from an informer cache).
	for _, o := range objs {
		if o.GetKind() != "Role" {
			continue
		}
		var role rbacv1.Role
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
			t.Fatal(err)
		}
		for _, r := range role.Rules {
			a := authorizationv1.ResourceAttributes{Namespace: ns, Group: r.APIGroups[0], Resource: r.Resources[0],
				Verb: r.Verbs[0]}
			if len(r.ResourceNames) > 0 {
				a.Name = r.ResourceNames[0]
			}
			catest.WaitAllowed(t, catest.MeshcaRBAC(t, k), a)
		}
	}
}

// rotationReplica is one meshca serve of TestTwoServeReplicasRotateTheRootInACluster.
type rotationReplica struct {
	name, adminAddr, tokenFile string
	conn                       *grpc.ClientConn
}

// Two `meshca serve --config` replicas on the real API server, as meshca's service account with only the
// shipped RBAC (base and components/root-rotation) and the shipped rotation: section (identity, the admin port
// and short timings aside), go through a root rotation with backends[].file.nextDir: staged, publishing (both
// send the next root), activated (both sign with the next CA), retiring and idle, with the state in the
// ConfigMap, each replica's report in its -replicas ConfigMap, the Lease held by one of them and an Event per
// transition.
func TestTwoServeReplicasRotateTheRootInACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver (scripts/testbins.sh); skipped under -short")
	}
	k := catest.SharedKube(t)
	ctx := context.Background()
	dir := t.TempDir()
	kubeconfig := meshcaKubeconfig(t, k, dir)
	shipped := shippedRotation(t)
	applyRotationRBAC(t, k, shipped)
	ns, cmName := shipped["leaseNamespace"].(string), shipped["configMap"].(string)
	oldCA, newCA := caInto(t, dir, "cacerts"), caInto(t, dir, "cacerts-next")
	pool := x509.NewCertPool()
	pool.AddCert(oldCA.Root)
	pool.AddCert(newCA.Root) // the serving certificate may come from the new CA
	started := time.Now().Add(-time.Second)

	var reps []*rotationReplica
	for _, name := range []string{"meshca-a", "meshca-b"} {
		r := &rotationReplica{name: name, adminAddr: fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t)),
			tokenFile: filepath.Join(dir, name+"-admin-token")}
		rot := map[string]any{}
		for key, v := range shipped {
			rot[key] = v
		}
		// Two replicas in one host share its name, the default identity; and the timings are short.
		for key, v := range map[string]any{"identity": name, "adminAddr": r.adminAddr, "pollInterval": "100ms",
			"manual": true, "leaseDuration": "4s", "renewDeadline": "3s", "retryPeriod": "500ms"} {
			rot[key] = v
		}
		section, err := json.Marshal(rot)
		if err != nil {
			t.Fatal(err)
		}
		grpcAddr := fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t))
		config := filepath.Join(dir, name+".yaml")
		// Leaves of 4s: the gates wait for one maximum lifetime after the start and for every holder to renew.
		writeFile(t, config, fmt.Sprintf(`
allowShortTTLs: true
issuance: {trustDomain: cluster.local, defaultTTL: 4s, minTTL: 1s, maxTTL: 4s}
server: {grpcAddr: %q, httpAddr: "127.0.0.1:%d", ipAddresses: ["127.0.0.1"]}
authn: {issuers: []}
kubernetes: {kubeconfig: %q, tokenReview: {}}
adminTokenFile: %q
rotation: %s
backends:
  - name: cacerts
    file: {dir: %q, nextDir: %q, reloadInterval: 100ms}
`, grpcAddr, catest.FreePort(t), kubeconfig, r.tokenFile, section, filepath.Join(dir, "cacerts"),
			filepath.Join(dir, "cacerts-next")))
		serveConfig(t, config)
		if r.conn, err = grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(
			&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.conn.Close() })
		reps = append(reps, r)
	}

	wl := k.Namespace(t)
	if _, err := k.Client.CoreV1().ServiceAccounts(wl).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sleep"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := k.Client.CoreV1().ServiceAccounts(wl).CreateToken(ctx, "sleep", &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{authn.DefaultAudience}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/"+wl+"/sa/sleep")
	// renew gets the workload a certificate from r; it returns the issuing CA and the trust bundle.
	renew := func(r *rotationReplica) (*file.Generated, []*x509.Certificate, error) {
		rctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization",
			"Bearer "+tr.Status.Token, "clusterid", authn.DefaultClusterID), 5*time.Second)
		defer cancel()
		resp, err := pb.NewIstioCertificateServiceClient(r.conn).CreateCertificate(rctx,
			&pb.IstioCertificateRequest{Csr: string(csrPEM)})
		if err != nil {
			return nil, nil, err
		}
		chain := parseChain(t, resp.CertChain)
		bundle, err := backends.ParseCertificates([]byte(resp.CertChain[len(resp.CertChain)-1]))
		if err != nil {
			return nil, nil, err
		}
		for _, g := range []*file.Generated{oldCA, newCA} {
			if chain[1].Equal(g.Intermediate) {
				return g, bundle, nil
			}
		}
		return nil, nil, errors.New("a leaf from neither CA")
	}
	name := map[*file.Generated]string{oldCA: "the old CA", newCA: "the new CA"}
	// expect waits until both replicas sign with want and send the next root in the bundle (or not).
	expect := func(when string, want *file.Generated, nextRoot bool) {
		t.Helper()
		catest.Eventually(t, 20*time.Second, when+": both replicas sign with "+name[want], func() error {
			for _, r := range reps {
				got, bundle, err := renew(r)
				if err != nil {
					return fmt.Errorf("replica %s: %w", r.name, err)
				}
				if got != want {
					return fmt.Errorf("replica %s signs with %s", r.name, name[got])
				}
				has := false
				for _, c := range bundle {
					has = has || c.Equal(newCA.Root)
				}
				if has != nextRoot {
					return fmt.Errorf("replica %s: next root in the bundle %v, want %v", r.name, has, nextRoot)
				}
			}
			return nil
		})
	}
	// rotation runs `meshca rotation ARGS...` on whichever replica leads until it exits 0 (a follower or a
	// closed gate exits 3), renewing through both replicas before each try so that the gates can open.
	rotation := func(args ...string) string {
		t.Helper()
		var out string
		catest.Eventually(t, 40*time.Second, "meshca rotation "+strings.Join(args, " "), func() error {
			var errs []error
			for _, r := range reps {
				_, _, _ = renew(r)
			}
			for _, r := range reps {
				var stdout, stderr bytes.Buffer
				all := append([]string{"rotation", "--admin-addr", r.adminAddr, "--admin-token-file", r.tokenFile},
					args...)
				if code := runNoPanic(t, all, &stdout, &stderr); code != 0 {
					errs = append(errs, fmt.Errorf("replica %s: exit %d: %s", r.name, code, stderr.String()))
					continue
				}
				out = stdout.String()
				return nil
			}
			return errors.Join(errs...)
		})
		return out
	}
	expect("before the rotation", oldCA, false)
	steps := []struct {
		args     []string
		out      string
		signer   *file.Generated
		nextRoot bool
	}{
		{[]string{"start", "--max-leaf-lifetime", "0", "--reason", "test"}, "idle → staged", oldCA, false},
		{[]string{"advance"}, "staged → publishing", oldCA, true},
		{[]string{"advance"}, "publishing → activated", newCA, true},
		{[]string{"advance"}, "activated → retiring", newCA, true},
		{[]string{"advance"}, "retiring → idle", newCA, true},
	}
	for _, step := range steps {
		if out := rotation(step.args...); !strings.Contains(out, step.out) {
			t.Fatalf("meshca rotation %s: %q, want %q", strings.Join(step.args, " "), out, step.out)
		}
		expect("after "+step.out, step.signer, step.nextRoot)
	}

	// The state, both reports, the Lease and one Event per transition are where the shipped RBAC lets them be.
	cm, err := k.Client.CoreV1().ConfigMaps(ns).Get(ctx, cmName, metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["state.json"], `"idle"`) {
		t.Errorf("ConfigMap %s/%s: %v, want an idle state: %v", ns, cmName, err, cm)
	}
	replicas, err := k.Client.CoreV1().ConfigMaps(ns).Get(ctx, cmName+"-replicas", metav1.GetOptions{})
	if err != nil || replicas.Data[reps[0].name] == "" || replicas.Data[reps[1].name] == "" {
		t.Errorf("ConfigMap %s-replicas: %v, want a report from both replicas", cmName, err)
	}
	lease, err := k.Client.CoordinationV1().Leases(ns).Get(ctx, shipped["leaseName"].(string), metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil ||
		(*lease.Spec.HolderIdentity != reps[0].name && *lease.Spec.HolderIdentity != reps[1].name) {
		t.Errorf("Lease %s: %v, want one held by a replica", shipped["leaseName"], err)
	}
	catest.Eventually(t, 10*time.Second, "an Event per transition", func() error {
		evs, err := k.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		n := 0
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == cmName && e.Source.Component == "meshca" &&
				!e.FirstTimestamp.Time.Before(started) {
				n++
			}
		}
		if n < len(steps) {
			return fmt.Errorf("%d Events on ConfigMap %s, want %d", n, cmName, len(steps))
		}
		return nil
	})
}

package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/admin"
	"github.com/meshca/meshca/internal/admintoken"
	"github.com/meshca/meshca/internal/testpki"
)

// replica is one meshca serve in the two-replica test.
type replica struct{ name, httpAddr, adminAddr, outputDir string }

// intermediateCRL reads r's /crl.pem and returns the CRL of inter in it.
func (r replica) intermediateCRL(inter *x509.Certificate) (*x509.RevocationList, error) {
	resp, err := http.Get("http://" + r.httpAddr + "/crl.pem")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("replica %s /crl.pem: %d %v", r.name, resp.StatusCode, err)
	}
	return crlOf(body, inter)
}

// crlOf returns the CRL of ca in the ca-crl.pem bundle.
func crlOf(bundle []byte, ca *x509.Certificate) (*x509.RevocationList, error) {
	lists, err := crl.ParseBundle(bundle)
	if err != nil {
		return nil, err
	}
	for _, l := range lists {
		if crl.Matches(l, ca) {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no CRL of %s among %d", ca.Subject, len(lists))
}

func lists(l *x509.RevocationList, serial *big.Int) bool {
	for _, e := range l.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// Two meshca serve replicas on the real API server, sharing the meshca-revocations Secret: a revocation
// through either one's admin API reaches the other's /crl.pem, the istio-ca-crl ConfigMap (written by the
// Lease holder) and crl.outputDir; both publish the same CRL number, and it increases with every revocation.
func TestTwoServeReplicasAgreeOnRevocations(t *testing.T) {
	k := catest.SharedKube(t)
	ctx := context.Background()
	dir := t.TempDir()
	kubeconfig := meshcaKubeconfig(t, k, dir)
	const cacerts = "cacerts"
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local", RootCRL: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: cacerts, Namespace: catest.MeshcaNamespace},
			Data: map[string][]byte{file.CACertFile: g.CertPEM, file.CAKeyFile: g.KeyPEM, file.RootCertFile: g.RootPEM,
				file.CertChainFile: append(append([]byte{}, g.CertPEM...), g.RootPEM...), file.CRLFile: g.CRLPEM}},
		{ObjectMeta: metav1.ObjectMeta{Name: "meshca-revocations", Namespace: catest.MeshcaNamespace}},
	} {
		if _, err := k.Client.CoreV1().Secrets(catest.MeshcaNamespace).Create(ctx, s,
			metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			k.Client.CoreV1().Secrets(catest.MeshcaNamespace).Delete(ctx, s.Name, metav1.DeleteOptions{})
		})
	}
	var reps []replica
	var grpcPorts []int
	for _, name := range []string{"a", "b"} {
		r := replica{name: name, httpAddr: fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t)),
			adminAddr: fmt.Sprintf("127.0.0.1:%d", catest.FreePort(t)), outputDir: filepath.Join(dir, name)}
		if err := os.Mkdir(r.outputDir, 0o755); err != nil {
			t.Fatal(err)
		}
		grpcPort := catest.FreePort(t)
		config := filepath.Join(dir, name+".yaml")
		writeFile(t, config, fmt.Sprintf(`
issuance: {trustDomain: cluster.local}
server: {grpcAddr: "127.0.0.1:%d", httpAddr: %q, ipAddresses: ["127.0.0.1"]}
authn: {issuers: []}
kubernetes: {kubeconfig: %q, tokenReview: {}}
adminTokenFile: %q
crl:
  secret: {namespace: istio-system}
  configMaps: {leaseNamespace: istio-system}
  outputDir: %q
  flushInterval: 200ms
  interval: 1s
  admin: {addr: %q}
backends:
  - name: cacerts
    file: {secret: istio-system/%s}
`, grpcPort, r.httpAddr, kubeconfig, filepath.Join(dir, name+"-admin-token"), r.outputDir, r.adminAddr, cacerts))
		serveConfig(t, config)
		reps, grpcPorts = append(reps, r), append(grpcPorts, grpcPort)
	}
	inter := g.Intermediate
	var before uint64
	catest.Eventually(t, 30*time.Second, "both replicas publishing", func() error {
		for _, r := range reps {
			l, err := r.intermediateCRL(inter)
			if err != nil {
				return err
			}
			before = max(before, l.Number.Uint64())
		}
		return nil
	})

	// Each revocation goes through one replica; the other, the ConfigMap and both output directories follow,
	// and the CRL number both replicas publish is the same and higher than before.
	nsA, nsB := k.Namespace(t), k.Namespace(t)
	leafA := issueInCluster(t, k, nsA, grpcPorts[0], g.Root)[0]
	leafB := issueInCluster(t, k, nsB, grpcPorts[1], g.Root)[0]
	last := before
	for i, step := range []struct {
		via  replica
		leaf *x509.Certificate
		ns   string
	}{{reps[0], leafA, nsA}, {reps[1], leafB, nsB}} {
		tok, err := admintoken.Read(filepath.Join(dir, step.via.name+"-admin-token"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = (&admin.Client{Addr: step.via.adminAddr, Token: tok}).Revoke(ctx, admin.RevokeRequest{
			Certificate: string(testpki.CertsPEM(step.leaf)), Reason: "keyCompromise"})
		if err != nil {
			t.Fatalf("revoke through replica %s: %v", step.via.name, err)
		}
		var numbers [2]uint64
		catest.Eventually(t, 20*time.Second, fmt.Sprintf("revocation %d on both replicas", i+1), func() error {
			for j, r := range reps {
				l, err := r.intermediateCRL(inter)
				if err != nil {
					return err
				}
				if !lists(l, step.leaf.SerialNumber) || (i == 1 && !lists(l, leafA.SerialNumber)) {
					return fmt.Errorf("replica %s does not list the revoked serials yet", r.name)
				}
				numbers[j] = l.Number.Uint64()
				out, err := os.ReadFile(filepath.Join(r.outputDir, crl.OutputFile))
				if err != nil {
					return err
				}
				if l, err := crlOf(out, inter); err != nil || !lists(l, step.leaf.SerialNumber) {
					return fmt.Errorf("replica %s's crl.outputDir does not list it yet (%v)", r.name, err)
				}
			}
			if numbers[0] != numbers[1] {
				return fmt.Errorf("CRL numbers differ: a %d, b %d", numbers[0], numbers[1])
			}
			return nil
		})
		if numbers[0] <= last {
			t.Fatalf("revocation %d: CRL number %d, not above the previous %d", i+1, numbers[0], last)
		}
		last = numbers[0]
		catest.Eventually(t, 20*time.Second, "istio-ca-crl in "+step.ns+" listing the serial", func() error {
			cm, err := k.Client.CoreV1().ConfigMaps(step.ns).Get(ctx, "istio-ca-crl", metav1.GetOptions{})
			if err != nil {
				return err
			}
			l, err := crlOf([]byte(cm.Data["ca-crl.pem"]), inter)
			switch {
			case err != nil:
				return err
			case !lists(l, step.leaf.SerialNumber):
				return errors.New("the ConfigMap does not list the serial yet")
			case l.Number.Uint64() < last:
				return fmt.Errorf("the ConfigMap's CRL number %d is below the replicas' %d", l.Number.Uint64(), last)
			}
			return nil
		})
	}
}

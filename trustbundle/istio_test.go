package trustbundle_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/manifests"
	"github.com/meshca/meshca/trustbundle"
)

// Istio's names: with ENABLE_CLUSTER_TRUST_BUNDLE_API, Istio mounts the ClusterTrustBundle
// istio.io:istiod-ca:root-cert of signer istio.io/istiod-ca (istio/istio pkg clustertrustbundle) as
// root-cert.pem. With istioClusterTrustBundle, meshca publishes under those names, on a cluster serving only
// v1beta1, as meshca's service account with the shipped RBAC plus components/istio-trust-bundle and nothing
// else: a rule missing from the component fails this test.
func TestPublisherUnderIstiosNames(t *testing.T) {
	k := catest.StartKube(t,
		"--runtime-config=certificates.k8s.io/v1/clustertrustbundles=false,certificates.k8s.io/v1beta1=true,"+
			"certificates.k8s.io/v1beta1/clustertrustbundles=true")
	f := newFixture(t, k)
	f.signer, f.gvr.Version = trustbundle.IstioSignerName, "v1beta1"
	objs, err := catest.DecodeYAML(manifests.IstioTrustBundleRBAC)
	if err != nil {
		t.Fatal(err)
	}
	if err := catest.Apply(context.Background(), k.Config, objs, catest.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	f.namespace(t, true)
	r := f.start(t, "replica-0", func(c *trustbundle.Config) { c.SignerName, c.IstioClusterTrustBundle = "", true })
	if got := r.p.ClusterTrustBundleName(); got != "istio.io:istiod-ca:root-cert" {
		t.Fatalf("ClusterTrustBundle name %q, want Istio's istio.io:istiod-ca:root-cert", got)
	}
	catest.Eventually(t, 20*time.Second, "Istio's ClusterTrustBundle published", f.allHold(r.p, encode(t, f.rootA)))
}

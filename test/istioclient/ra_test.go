package istioclient

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	istioca "istio.io/istio/security/pkg/pki/ca"
	"istio.io/istio/security/pkg/pki/ra"
	pkiutil "istio.io/istio/security/pkg/pki/util"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/kubesigner"
	"github.com/meshca/meshca/internal/leader"
	"github.com/meshca/meshca/manifests"
)

func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }

// istiodRBAC is the part of istiod's ClusterRole its registration authority uses (istio-discovery chart,
// clusterrole.yaml, with EXTERNAL_CA set): create, approve, read and delete CSRs for meshca's signers.
const istiodRBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: istiod-ra-test}
rules:
  - apiGroups: ["certificates.k8s.io"]
    resources: ["certificatesigningrequests", "certificatesigningrequests/approval",
                "certificatesigningrequests/status"]
    verbs: ["update", "create", "get", "delete", "watch"]
  - apiGroups: ["certificates.k8s.io"]
    resources: ["signers"]
    resourceNames: ["meshca.io/*"]
    verbs: ["approve"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: istiod-ra-test}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: istiod-ra-test}
subjects:
  - {kind: ServiceAccount, name: istiod, namespace: istio-system}
`

// Istio's own registration authority (security/pkg/pki/ra.KubernetesRA, what istiod runs with
// EXTERNAL_CA=ISTIOD_RA_KUBERNETES_API and K8S_SIGNER) creates, approves and reads back a certificate that
// meshca's Kubernetes signer issues, against the real kube-apiserver, with both sides holding only the RBAC
// they ship with. The CSR is istio-agent's own (pkiutil.GenCSR).
func TestIstiodRegistrationAuthority(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver (scripts/testbins.sh); skipped under -short")
	}
	k := catest.SharedKube(t)
	meshcaCfg := catest.MeshcaRBAC(t, k)
	ctx := context.Background()
	for _, doc := range []string{string(manifests.K8sSignerRBAC), istiodRBAC} {
		objs, err := catest.DecodeYAML([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := catest.Apply(ctx, k.Config, objs, catest.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	istiodCfg := rest.CopyConfig(k.Config)
	istiodCfg.Impersonate = rest.ImpersonationConfig{UserName: kubesigner.DefaultRequester,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:istio-system", "system:authenticated"}}
	for cfg, verb := range map[*rest.Config]string{istiodCfg: "approve", meshcaCfg: "sign"} {
		catest.WaitAllowed(t, cfg, authorizationv1.ResourceAttributes{Group: "certificates.k8s.io",
			Resource: "signers", Name: "meshca.io/*", Verb: verb})
	}

	// meshca: a file CA, the issuance core and the signer for meshca.io/workloads.
	dir, gen := catest.FileCA(t)
	reg := prometheus.NewRegistry()
	issuer, err := ca.New(ca.Config{
		Backends:      []ca.NamedBackend{{Name: "primary", Backend: catest.FileBackend(t, dir, reg)}},
		Authenticator: authn.Chain{}, Policy: ca.Policy{TrustDomain: catest.TrustDomain},
		Logger: catest.DiscardLogger(), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := kubesigner.New(kubesigner.Config{
		Signers: []kubesigner.SignerConfig{{Name: "meshca.io/workloads"}},
		LeaseConfig: leader.LeaseConfig{LeaseNamespace: catest.MeshcaNamespace, Identity: "meshca-0",
			LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond},
		Kube: meshcaCfg, Issuer: issuer,
		Logger: catest.DiscardLogger(), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = signer.Run(sctx) }()
	t.Cleanup(func() { stop(); <-done })

	// istiod: its RA with meshca's root as the external CA's certificate file (/etc/external-ca-cert).
	caFile := filepath.Join(t.TempDir(), "root-cert.pem")
	if err := os.WriteFile(caFile, gen.RootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	istiodClient, err := kubernetes.NewForConfig(istiodCfg)
	if err != nil {
		t.Fatal(err)
	}
	raServer, err := ra.NewKubernetesRA(&ra.IstioRAOptions{ExternalCAType: ra.ExtCAK8s,
		DefaultCertTTL: 24 * time.Hour, MaxCertTTL: 48 * time.Hour, CaCertFile: caFile,
		CaSigner: "meshca.io/workloads", VerifyAppendCA: true, K8sClient: istiodClient,
		TrustDomain: catest.TrustDomain})
	if err != nil {
		t.Fatal(err)
	}
	// As the agent makes it; the RA refuses a CSR that differs from its own template (no O=, one URI SAN).
	csrPEM, _, err := pkiutil.GenCSR(pkiutil.CertOptions{Host: wantID, RSAKeySize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	var chain []string
	catest.Eventually(t, 60*time.Second, "a certificate through istiod's RA", func() error {
		chain, err = raServer.SignWithCertChain(csrPEM, istioca.CertOpts{SubjectIDs: []string{wantID},
			TTL: 12 * time.Hour})
		return err
	})

	certs := parsePEM(t, strings.Join(chain, ""))
	if len(certs) < 3 || !certs[len(certs)-1].Equal(gen.Root) {
		t.Fatalf("istiod got %d certificates, want leaf, intermediate and meshca's root last", len(certs))
	}
	leaf := certs[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != wantID {
		t.Errorf("leaf URIs %v, want [%s]", leaf.URIs, wantID)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 11*time.Hour || life > 13*time.Hour {
		t.Errorf("lifetime %s, want the 12h istiod asked for", life)
	}
	if err := pkiutil.VerifyCertificate(nil, []byte(strings.Join(chain, "")), gen.RootPEM, nil); err != nil {
		t.Errorf("istio's own chain check: %v", err)
	}
	// istiod deletes the request once it has the certificate (and reads it back without list, which its
	// ClusterRole does not grant: chiron ignores the list's error and waits on the watch).
	list, err := k.Client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list.Items {
		if r.Spec.SignerName == "meshca.io/workloads" {
			t.Errorf("CSR %s left behind", r.Name)
		}
	}
}

func parsePEM(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	data := []byte(s)
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

package trustbundle_test

import (
	"errors"
	"testing"

	"github.com/meshca/meshca/trustbundle"
)

func TestConfigValidateNames(t *testing.T) {
	valid := func(mod func(*trustbundle.Config)) trustbundle.Config {
		c := trustbundle.Config{LeaseNamespace: "istio-system"}
		mod(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  trustbundle.Config
		want error // nil: valid
	}{
		{"Istio's names alone are valid", valid(func(c *trustbundle.Config) { c.IstioClusterTrustBundle = true }), nil},
		{"Istio's names with Istio's signer spelled out are valid", valid(func(c *trustbundle.Config) {
			c.IstioClusterTrustBundle, c.SignerName = true, trustbundle.IstioSignerName
		}), nil},
		{"Istio's names beside another signer are refused", valid(func(c *trustbundle.Config) {
			c.IstioClusterTrustBundle, c.SignerName = true, "meshca.io/workload-ca"
		}), trustbundle.ErrConflictingNames},
		{"Istio's names beside another bundle name are refused", valid(func(c *trustbundle.Config) {
			c.IstioClusterTrustBundle, c.BundleName = true, "roots"
		}), trustbundle.ErrConflictingNames},
		{"ML-DSA outputs with their defaults are valid", valid(func(c *trustbundle.Config) {
			c.PostQuantum = &trustbundle.PostQuantumConfig{}
		}), nil},
		{"ML-DSA roots in istio-ca-root-cert are refused", valid(func(c *trustbundle.Config) {
			c.PostQuantum = &trustbundle.PostQuantumConfig{ConfigMapName: trustbundle.ConfigMapName}
		}), trustbundle.ErrConflictingNames},
		{"ML-DSA roots in the classical ClusterTrustBundle are refused", valid(func(c *trustbundle.Config) {
			c.PostQuantum = &trustbundle.PostQuantumConfig{SignerName: "meshca.io/workload-ca"}
		}), trustbundle.ErrConflictingNames},
		{"ML-DSA roots in Istio's ClusterTrustBundle are refused", valid(func(c *trustbundle.Config) {
			c.IstioClusterTrustBundle = true
			c.PostQuantum = &trustbundle.PostQuantumConfig{SignerName: trustbundle.IstioSignerName,
				BundleName: trustbundle.IstioBundleName}
		}), trustbundle.ErrConflictingNames},
		{"the ML-DSA publisher sharing the classical Lease is refused", valid(func(c *trustbundle.Config) {
			c.PostQuantum = &trustbundle.PostQuantumConfig{LeaseName: "meshca-trustbundle"}
		}), trustbundle.ErrConflictingNames},
		{"composite outputs with their defaults beside the ML-DSA ones are valid", valid(func(c *trustbundle.Config) {
			c.PostQuantum, c.Composite = &trustbundle.PostQuantumConfig{}, &trustbundle.PostQuantumConfig{}
		}), nil},
		{"composite roots in istio-ca-root-cert are refused", valid(func(c *trustbundle.Config) {
			c.Composite = &trustbundle.PostQuantumConfig{ConfigMapName: trustbundle.ConfigMapName}
		}), trustbundle.ErrConflictingNames},
		{"composite roots in the classical ClusterTrustBundle are refused", valid(func(c *trustbundle.Config) {
			c.Composite = &trustbundle.PostQuantumConfig{SignerName: "meshca.io/workload-ca"}
		}), trustbundle.ErrConflictingNames},
		{"the composite publisher sharing the classical Lease is refused", valid(func(c *trustbundle.Config) {
			c.Composite = &trustbundle.PostQuantumConfig{LeaseName: "meshca-trustbundle"}
		}), trustbundle.ErrConflictingNames},
		{"composite roots in the ML-DSA ConfigMap are refused", valid(func(c *trustbundle.Config) {
			c.PostQuantum = &trustbundle.PostQuantumConfig{}
			c.Composite = &trustbundle.PostQuantumConfig{ConfigMapName: trustbundle.DefaultPostQuantumConfigMapName}
		}), trustbundle.ErrConflictingNames},
		{"composite roots in the ML-DSA ClusterTrustBundle are refused", valid(func(c *trustbundle.Config) {
			c.PostQuantum = &trustbundle.PostQuantumConfig{}
			c.Composite = &trustbundle.PostQuantumConfig{SignerName: trustbundle.DefaultPostQuantumSignerName}
		}), trustbundle.ErrConflictingNames},
		{"the composite publisher sharing the ML-DSA Lease is refused", valid(func(c *trustbundle.Config) {
			c.PostQuantum = &trustbundle.PostQuantumConfig{}
			c.Composite = &trustbundle.PostQuantumConfig{LeaseName: trustbundle.DefaultPostQuantumLeaseName}
		}), trustbundle.ErrConflictingNames},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Validate: %v, want %v", err, tc.want)
			}
		})
	}
	bad := trustbundle.Config{LeaseNamespace: "istio-system", PostQuantum: &trustbundle.PostQuantumConfig{
		SignerName: "no-slash", ConfigMapName: "Not_A_Name", ConfigMapKey: "a/b"}}
	if err := bad.Validate(); err == nil {
		t.Fatal("Validate accepted a malformed signer, ConfigMap name and key")
	}
}

func TestIstioClusterTrustBundleSetsIstiosNames(t *testing.T) {
	c := trustbundle.Config{IstioClusterTrustBundle: true}.WithDefaults()
	if got := trustbundle.ClusterTrustBundleName(c.SignerName, c.BundleName); got != "istio.io:istiod-ca:root-cert" {
		t.Fatalf("ClusterTrustBundle %q, want Istio's istio.io:istiod-ca:root-cert", got)
	}
	pq := trustbundle.Config{PostQuantum: &trustbundle.PostQuantumConfig{}}.WithDefaults().PostQuantum
	if pq.SignerName != "meshca.io/workload-ca-mldsa" || pq.ConfigMapName != "meshca-root-cert-mldsa" ||
		pq.ConfigMapKey != "root-cert-mldsa.pem" || pq.LeaseName != "meshca-trustbundle-mldsa" {
		t.Fatalf("postQuantum defaults %+v", *pq)
	}
	hy := trustbundle.Config{Composite: &trustbundle.PostQuantumConfig{}}.WithDefaults().Composite
	if hy.SignerName != "meshca.io/workload-ca-composite" || hy.ConfigMapName != "meshca-root-cert-composite" ||
		hy.ConfigMapKey != "root-cert-composite.pem" || hy.LeaseName != "meshca-trustbundle-composite" {
		t.Fatalf("composite defaults %+v", *hy)
	}
}

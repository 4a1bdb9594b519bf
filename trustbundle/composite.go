package trustbundle

import (
	"errors"
	"fmt"
)

// The defaults of Config.Composite: names of meshca's own, apart from the classical and the ML-DSA ones, so
// that neither Envoy (root-cert.pem) nor a consumer of the ML-DSA roots ever loads a composite root.
const (
	DefaultCompositeSignerName    = "meshca.io/workload-ca-composite"
	DefaultCompositeConfigMapName = "meshca-root-cert-composite"
	DefaultCompositeConfigMapKey  = "root-cert-composite.pem"
	DefaultCompositeLeaseName     = "meshca-trustbundle-composite"
)

// The roots a child publisher publishes, which name its metrics and label its logs.
const (
	rootsMLDSA     = "mldsa"
	rootsComposite = "composite"
)

func (c PostQuantumConfig) withCompositeDefaults() PostQuantumConfig {
	return c.withDefaultsOf(DefaultCompositeSignerName, DefaultCompositeConfigMapName, DefaultCompositeConfigMapKey,
		DefaultCompositeLeaseName)
}

// validateCompositeApart checks that the composite outputs are not the ML-DSA ones: a consumer of the ML-DSA
// roots (Go 1.27's crypto/x509) cannot verify with a composite root, and one publisher would undo the other's
// writes.
func (c *Config) validateCompositeApart() error {
	if c.PostQuantum == nil {
		return nil
	}
	pq, hy := c.PostQuantum.withDefaults(), c.Composite.withCompositeDefaults()
	var errs []error
	if hy.ConfigMapName == pq.ConfigMapName {
		errs = append(errs, fmt.Errorf("%w: composite.configMapName must differ from postQuantum.configMapName "+
			"(default %s)", ErrConflictingNames, DefaultCompositeConfigMapName))
	}
	if ClusterTrustBundleName(hy.SignerName, hy.BundleName) == ClusterTrustBundleName(pq.SignerName, pq.BundleName) {
		errs = append(errs, fmt.Errorf("%w: composite.signerName and bundleName name the ML-DSA "+
			"ClusterTrustBundle: give the composite roots names of their own", ErrConflictingNames))
	}
	if hy.LeaseName == pq.LeaseName {
		errs = append(errs, fmt.Errorf("%w: composite.leaseName must differ from postQuantum.leaseName",
			ErrConflictingNames))
	}
	return errors.Join(errs...)
}

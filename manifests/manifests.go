package manifests

import _ "embed"

// RBAC is base/rbac.yaml: meshca's ServiceAccount (istio-system/meshca) and its ClusterRole, Role and
// bindings, as applied by kubectl apply -k manifests/base.
//
//go:embed base/rbac.yaml
var RBAC []byte

// ExpiryScannerRBAC is components/expiry-scanner/rbac.yaml: the ClusterRole and binding the expiry scanner
// (ca/expiry/kubescan) needs beyond RBAC.
//
//go:embed components/expiry-scanner/rbac.yaml
var ExpiryScannerRBAC []byte

// K8sSignerRBAC is components/k8s-signer/rbac.yaml: the ClusterRole, Role and bindings the Kubernetes CSR
// signer (ca/kubesigner) needs beyond RBAC.
//
//go:embed components/k8s-signer/rbac.yaml
var K8sSignerRBAC []byte

// IstioTrustBundleRBAC is components/istio-trust-bundle/rbac.yaml: the ClusterRole and binding that let meshca
// write Istio's ClusterTrustBundle (trustbundle.Config.IstioClusterTrustBundle) beyond RBAC.
//
//go:embed components/istio-trust-bundle/rbac.yaml
var IstioTrustBundleRBAC []byte

// RootRotationRBAC is components/root-rotation/rbac.yaml: the Role and binding a root rotation with replicas
// (rotation.configMap) needs beyond RBAC.
//
//go:embed components/root-rotation/rbac.yaml
var RootRotationRBAC []byte

// RootRotationConfig is components/root-rotation/config.yaml: base/config.yaml plus the rotation: section.
//
//go:embed components/root-rotation/config.yaml
var RootRotationConfig []byte

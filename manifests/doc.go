// Package manifests holds meshca's Kubernetes manifests: a kustomize base (Deployment, Service, ServiceAccount
// and least-privilege RBAC, PodDisruptionBudget, ServiceMonitor, PrometheusRule, Grafana dashboard), overlays
// for the file, Vault and step-ca backends, optional components, and the Istio settings that point istiod and
// the agents at meshca (istio/), and a Helm chart (helm/meshca) whose renderings the tests compare object by
// object with the kustomize builds. The Go package only embeds the files tests and helpers need; the manifests
// themselves are applied with kubectl apply -k or helm install.
package manifests

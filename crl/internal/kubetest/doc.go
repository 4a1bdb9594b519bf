// Package kubetest runs crl's Kubernetes code in tests with exactly the permissions it documents: it binds
// given RBAC rules to a fresh user and returns a client configuration that impersonates that user.
package kubetest

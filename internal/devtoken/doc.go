// Package devtoken mints Kubernetes-style service-account tokens signed by a local key, so the whole request
// flow runs without a cluster: `meshca serve --dev` trusts the key and `meshca token` mints with it, the load
// tester (loadtest) mints one token per identity, and tests use it wherever a real token is not the point.
//
// It lives outside the authentication packages because production never mints tokens: meshca trusts the
// cluster's issuer instead. It is internal because it is a development tool of this repository, not an API.
package devtoken

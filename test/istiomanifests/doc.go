// Package istiomanifests renders meshca's Istio settings (manifests/istio) with Istio's own installer code —
// the IstioOperator validation and Helm charts istioctl and helm use — and checks that the rendered istiod,
// sidecar injector and ztunnel point at meshca. It is a separate module so istio.io/istio stays out of
// meshca's go.mod.
package istiomanifests

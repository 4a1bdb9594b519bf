#!/usr/bin/env bash
# Builds Istio's real istiod (pilot-discovery) from its Go module, at the version test/istioclient pins, and
# prints its path. Only the full RA-path test (pilot-agent -> istiod -> Kubernetes CSR -> meshca) needs it.
# Built after pilot-agent (testbins.sh), whose 700 packages it shares; it compiles ~1200 more. Measured: 48 min
# wall on 2 cores at load average 30-38 (other builds running), module cache and pilot-agent's packages warm.
# Cached in $MESHCA_CACHE/pilot-discovery-<version>/.
source "$(dirname "$0")/lib.sh"
ISTIO_VERSION=${ISTIO_VERSION:-v0.0.0-20260827124520-eed52ebb66ad}
dir="$MESHCA_CACHE/pilot-discovery-$ISTIO_VERSION"
build() {
  [ -x "$dir/pilot-discovery" ] && return
  log "building pilot-discovery $ISTIO_VERSION (first time only)"
  local start=$SECONDS
  rm -rf "$dir.tmp"
  GOBIN="$dir.tmp" CGO_ENABLED=0 go install -trimpath "istio.io/istio/pilot/cmd/pilot-discovery@$ISTIO_VERSION"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  log "built pilot-discovery in $((SECONDS - start))s"
}
with_lock pilot-discovery build
echo "$dir/pilot-discovery"

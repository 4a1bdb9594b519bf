#!/usr/bin/env bash
# Builds Istio's real pilot-agent (istio-agent) from its Go module and prints its path.
# Cold: ~3 min on 2 cores. Cached in $MESHCA_CACHE/pilot-agent-<version>/.
source "$(dirname "$0")/lib.sh"
ISTIO_VERSION=${ISTIO_VERSION:-v0.0.0-20260827124520-eed52ebb66ad}
dir="$MESHCA_CACHE/pilot-agent-$ISTIO_VERSION"
build() {
  [ -x "$dir/pilot-agent" ] && return
  log "building pilot-agent $ISTIO_VERSION (first time only, ~3 min)"
  GOBIN="$dir.tmp" CGO_ENABLED=0 go install -trimpath "istio.io/istio/pilot/cmd/pilot-agent@$ISTIO_VERSION"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}
with_lock pilot-agent build
echo "$dir/pilot-agent"

#!/usr/bin/env bash
# Builds smallstep's step-ca (pure Go, no PKCS#11) from its Go module and prints its path.
# Cold: ~3.5 min on 2 cores. Cached in $MESHCA_CACHE/step-ca-<version>/.
source "$(dirname "$0")/lib.sh"
STEPCA_VERSION=${STEPCA_VERSION:-v0.30.2}
dir="$MESHCA_CACHE/step-ca-$STEPCA_VERSION"
build() {
  [ -x "$dir/step-ca" ] && return
  log "building step-ca $STEPCA_VERSION (first time only, ~3.5 min)"
  GOBIN="$dir.tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-X main.Version=${STEPCA_VERSION#v}" \
    "github.com/smallstep/certificates/cmd/step-ca@$STEPCA_VERSION"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}
with_lock step-ca build
echo "$dir/step-ca"

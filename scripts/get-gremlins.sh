#!/usr/bin/env bash
# Builds the gremlins mutation tester from its Go module and prints its path (make mutate; not make test).
# Cold: ~1 min on 2 cores. Cached in $MESHCA_CACHE/gremlins-<version>/.
source "$(dirname "$0")/lib.sh"
GREMLINS_VERSION=${GREMLINS_VERSION:-v0.6.0}
dir="$MESHCA_CACHE/gremlins-$GREMLINS_VERSION"
build() {
  [ -x "$dir/gremlins" ] && return
  log "building gremlins $GREMLINS_VERSION (first time only)"
  GOBIN="$dir.tmp" CGO_ENABLED=0 go install -trimpath "github.com/go-gremlins/gremlins/cmd/gremlins@$GREMLINS_VERSION"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}
with_lock gremlins build
echo "$dir/gremlins"

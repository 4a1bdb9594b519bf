#!/usr/bin/env bash
# Builds Prometheus's promtool (promtool check rules, promtool test rules) from its Go module and prints its
# path. v0.316.0 is Prometheus 3.16; its go.mod has no replace directives, so go install works as is.
# Cold (Go 1.26): ~14 CPU-min including downloads, about 7 min on 2 idle cores (51 min wall was measured while
# other test-server builds shared the cores). Cached in $MESHCA_CACHE/promtool-<version>/.
source "$(dirname "$0")/lib.sh"
PROMTOOL_VERSION=${PROMTOOL_VERSION:-v0.316.0}
dir="$MESHCA_CACHE/promtool-$PROMTOOL_VERSION"
build() {
  [ -x "$dir/promtool" ] && return
  log "building promtool $PROMTOOL_VERSION (first time only, ~7 min)"
  GOBIN="$dir.tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}
with_lock promtool build
echo "$dir/promtool"

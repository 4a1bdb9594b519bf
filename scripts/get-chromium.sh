#!/usr/bin/env bash
# Installs Debian's chromium (the headless browser that renders the rotation status page in the tests) with
# apt-get and prints its path; prints an empty line, and the tests skip, where it cannot be installed (not
# root, no apt-get). Measured on Debian 12: ~2 min (about 100 MB of packages) on 2 shared cores.
source "$(dirname "$0")/lib.sh"
install() {
  command -v chromium >/dev/null && return
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "chromium is not installed and cannot be here (needs root and apt-get): the browser tests skip"
    return
  fi
  log "installing chromium with apt-get (first time only, ~2 min)"
  local start=$SECONDS
  if ! apt-cache policy chromium | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq >&2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 chromium >&2
  log "chromium installed in $((SECONDS - start)) s"
}
with_lock chromium install
command -v chromium || echo

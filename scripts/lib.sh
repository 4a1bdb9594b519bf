# Shared helpers for meshca's test-server scripts. Source it; do not run it.
# Binaries are cached outside the clone so a fresh clone (CI) finds them warm.
set -euo pipefail
MESHCA_CACHE=${MESHCA_CACHE:-$HOME/.cache/meshca}
mkdir -p "$MESHCA_CACHE"
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# with_lock NAME CMD...: serialise concurrent builds of the same binary.
with_lock() { local n=$1; shift; exec 9>"$MESHCA_CACHE/.$n.lock"; flock 9; "$@"; }
# moddir MODULE@VERSION: the module's directory in the module cache (downloads it). gofield reads one string
# field of `go mod download -json`, so no jq is needed.
gofield() { go mod download -json "$1" | sed -n "s/^\t\"$2\": \"\(.*\)\",\{0,1\}$/\1/p"; }

# Shared helpers for meshca's test-server scripts. Source it; do not run it.
# Binaries are cached outside the clone so a fresh clone (CI) finds them warm.
set -euo pipefail
MESHCA_CACHE=${MESHCA_CACHE:-$HOME/.cache/meshca}
# The test servers are built with the machine's own Go (1.26 here), with which every cold build was measured,
# not with the go1.27.3 toolchain that meshca's own module needs and the Makefile exports. The builds run in
# their own work directories or as `go install pkg@version`, so meshca's go.mod does not ask for 1.27 there.
export GOTOOLCHAIN=local
mkdir -p "$MESHCA_CACHE"
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# with_lock NAME CMD...: serialise concurrent builds of the same binary.
with_lock() { local n=$1; shift; exec 9>"$MESHCA_CACHE/.$n.lock"; flock 9; "$@"; }
# moddir MODULE@VERSION: the module's directory in the module cache (downloads it). gofield reads one string
# field of `go mod download -json`, so no jq is needed.
gofield() { go mod download -json "$1" | sed -n "s/^\t\"$2\": \"\(.*\)\",\{0,1\}$/\1/p"; }

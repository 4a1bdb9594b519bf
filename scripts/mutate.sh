#!/usr/bin/env bash
# make mutate: mutation testing (gremlins) of the security-relevant packages, in short test mode, one package at
# a time. Prints each package's killed, lived, not covered and timed-out counts, its efficacy
# (killed / (killed + lived)) and mutant coverage, and every mutant that lived, was not covered or timed out. Not
# part of make test.
#
#   MUTATE_PKGS     the packages (default: every package below)
#   MUTATE_EXCLUDE  a regexp of the files to leave out, for every package (default: each package's own scope)
#   MUTATE_TIMEOUT  gremlins' --timeout-coefficient (default 10; raise it on a loaded machine, where building a
#                   mutant can take longer than ten coverage runs and gremlins then reports "timed out")
#
# docs/benchmarks.md, "Mutation testing", gives the scores and the survivors that are equivalent.
set -euo pipefail
cd "$(dirname "$0")/.."

# scope PKG: the files gremlins leaves out of PKG, a regexp on paths relative to the package. '/' leaves out the
# sub-packages, which have their own entry. Besides doc.go and errors.go (no statements), what is left out is
# presentation (metrics, audit, serving) or talks to a server without deciding anything (the backends' HTTP
# clients), and the integration tests against the real servers cover it.
scope() {
  case $1 in
    ca) echo '/|^(metrics|audit|serving|bundle|pqroots|doc|errors|limits)\.go$' ;;
    backends/vault) echo '/|^(auth|client|revoke|vault|doc)\.go$' ;;
    backends/stepca) echo '/|^(api|revoke|stepca|token|doc)\.go$' ;;
    crl) echo '/|^(metrics|doc|errors|store)\.go$' ;;
    *) echo '/|^(doc|errors)\.go$' ;;
  esac
}

all='csr csr/composite ca ca/authn ca/authn/kube backends backends/file backends/vault backends/stepca crl'
pkgs=${MUTATE_PKGS:-$all}
report='^(Killed|Lived|Not covered|Timed out|Not viable|Mutator|Test efficacy|Mutant coverage)'
g=$(bash scripts/get-gremlins.sh)
for p in $pkgs; do
  exclude=${MUTATE_EXCLUDE:-$(scope "$p")}
  echo "== $p (-E '$exclude')"
  GOFLAGS=-short "$g" unleash --workers 1 --timeout-coefficient "${MUTATE_TIMEOUT:-10}" -E "$exclude" "./$p" 2>&1 |
    grep -E "$report|LIVED|NOT COVERED|TIMED OUT" ||
    { echo "mutate: gremlins printed no result for $p; run it without the filter to see why" >&2; exit 1; }
done

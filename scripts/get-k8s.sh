#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd from their Go modules and prints the directory holding both.
# kube-apiserver: a helper module requiring k8s.io/kubernetes with each k8s.io staging module (required at
# v0.0.0) replaced by the published v0.<minor>.<patch>. Cold: ~9 CPU-min, 2.4 GB peak. Cached in
# $MESHCA_CACHE/k8s-<k8s version>-etcd-<etcd version>/.
source "$(dirname "$0")/lib.sh"
K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
dir="$MESHCA_CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
build() {
  [ -x "$dir/kube-apiserver" ] && [ -x "$dir/etcd" ] && return
  log "building kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION (first time only, ~5-8 min)"
  local work="$MESHCA_CACHE/.k8s-src"; rm -rf "$work"; mkdir -p "$work/kube" "$work/etcd" "$dir.tmp"
  local staging="v0.${K8S_VERSION#v1.}" minor
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  cd "$work/kube"
  local kmod; kmod=$(gofield "k8s.io/kubernetes@$K8S_VERSION" GoMod)
  {
    echo "module local/kubebuild"; echo
    echo "go $(awk '/^go /{print $2; exit}' "$kmod")"; echo
    echo "require k8s.io/kubernetes $K8S_VERSION"; echo
    echo "replace ("
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0\s*$' "$kmod" | awk -v v="$staging" '{print "\t"$1" => "$1" "v}'
    echo ")"
  } > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > tools.go
  go mod tidy
  local v=k8s.io/component-base/version
  go build -trimpath -ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
    -o "$dir.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  cd "$work/etcd"
  printf 'module local/etcdbuild\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n' > tools.go
  go mod tidy
  go build -trimpath -ldflags="-s -w" -o "$dir.tmp/etcd" go.etcd.io/etcd/server/v3
  rm -rf "$dir"; mv "$dir.tmp" "$dir"; cd /; rm -rf "$work"
}
with_lock k8s build
echo "$dir"

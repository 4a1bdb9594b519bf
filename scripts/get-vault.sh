#!/usr/bin/env bash
# Builds a real HashiCorp Vault server from its Go module and prints its path.
#
# `go install github.com/hashicorp/vault@v1.21.4` is refused (replace directives in its go.mod), and v1.21.x
# was built against an in-tree sdk/ that matches no tagged github.com/hashicorp/vault/sdk. So this builds it
# from a helper module with: the two non-local replaces copied from Vault's go.mod, and sdk replaced by a local
# copy of sdk v0.21.0 whose framework.Backend.ActivationFunc takes two arguments and whose
# helper/keysutil/lock_manager.go comes from sdk v0.24.0. The test server is therefore a locally built Vault.
# Cold: 8-10 min on 2 cores. Cached in $MESHCA_CACHE/vault-<version>/.
source "$(dirname "$0")/lib.sh"
VAULT_VERSION=${VAULT_VERSION:-v1.21.4}
SDK_BASE=v0.21.0
SDK_RESTORE=v0.24.0
dir="$MESHCA_CACHE/vault-$VAULT_VERSION"
build() {
  [ -x "$dir/vault" ] && return
  log "building vault $VAULT_VERSION (first time only, 8-10 min)"
  local work="$MESHCA_CACHE/.vault-src-$VAULT_VERSION"
  rm -rf "$work"; mkdir -p "$work"; cd "$work"
  sdkdir() { gofield "github.com/hashicorp/vault/sdk@$1" Dir; }
  local base restore
  base=$(sdkdir $SDK_BASE); restore=$(sdkdir $SDK_RESTORE)
  [ -d "$base" ] && [ -d "$restore" ] || { log "vault sdk download failed"; exit 1; }
  cp -r "$base" sdk-patched; chmod -R u+w sdk-patched
  cp "$restore/helper/keysutil/lock_manager.go" sdk-patched/helper/keysutil/lock_manager.go
  sed -i 's/ActivationFunc func(context.Context, \*logical.Request, string) error/ActivationFunc func(context.Context, *logical.Request) error/' \
    sdk-patched/framework/backend.go
  grep -q 'ActivationFunc func(context.Context, \*logical.Request) error' sdk-patched/framework/backend.go \
    || { log "vault sdk patch did not apply: ActivationFunc signature not found"; exit 1; }
  cat > go.mod <<MOD
module local/vaultbuild

go 1.25.3

replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3

replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1

replace github.com/hashicorp/vault/sdk => ./sdk-patched
MOD
  go get "github.com/hashicorp/vault@$VAULT_VERSION"
  mkdir -p "$dir.tmp"
  go build -trimpath -ldflags "-s -w" -o "$dir.tmp/vault" github.com/hashicorp/vault
  rm -rf "$dir"; mv "$dir.tmp" "$dir"; cd /; rm -rf "$work"
}
with_lock vault build
echo "$dir/vault"

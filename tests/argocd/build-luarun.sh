#!/usr/bin/env bash
# Builds tests/argocd/luarun (gopher-lua, the Lua interpreter Argo CD embeds) into the cache, once
# per source version. Prints the binary's path on its last line.
set -euo pipefail
src=$(cd "$(dirname "$0")/luarun" && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/mlrollout
stamp=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
out=$cache/luarun-$stamp
if [ ! -x "$out" ]; then
  command -v go >/dev/null || { echo "build-luarun: no Go toolchain on PATH" >&2; exit 1; }
  mkdir -p "$cache"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp" . && mv "$out.tmp" "$out")
fi
echo "$out"

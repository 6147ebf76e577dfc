#!/usr/bin/env bash
# Builds the real parts of the test control plane from Go modules into a cache outside the
# repository, and reuses them when present. Nothing built here is ever committed.
#
#   MLROLLOUT_BIN_DIR   where the binaries go / are looked for (default ~/.cache/mlrollout/bin-<k8s>)
#   KUBEBUILDER_ASSETS  a directory of ready binaries (envtest convention); skips building those found
#
# Prints the binary directory on its last line.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
HELM_VERSION=${HELM_VERSION:-v3.19.5}
KUBECONFORM_VERSION=${KUBECONFORM_VERSION:-v0.7.0}
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
# Traefik v3.7 needs modules the module proxy does not serve; v3.6 builds. Its Gateway API
# provider implements v1.4 of the API: the CRDs are taken from that same version.
TRAEFIK_VERSION=${TRAEFIK_VERSION:-v3.6.12}
GATEWAY_API_VERSION=${GATEWAY_API_VERSION:-v1.4.0}
ISTIO_API_VERSION=${ISTIO_API_VERSION:-v1.31.1}

BIN_DIR=${MLROLLOUT_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlrollout/bin-${K8S_VERSION}}
WORK=${XDG_CACHE_HOME:-$HOME/.cache}/mlrollout/build
LOG_DIR=$WORK/logs
mkdir -p "$BIN_DIR" "$WORK" "$LOG_DIR"
# One build at a time per cache (parallel checkouts and CI share it): the others wait, then reuse.
exec 9>"$WORK/.lock"
flock 9

die() { echo "build-binaries: $*" >&2; exit 1; }
command -v go >/dev/null || die "no Go toolchain on PATH. Install Go >= 1.24 (https://go.dev/dl) or point KUBEBUILDER_ASSETS at ready binaries."

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-auto}

# A cached binary counts only with a stamp naming the wanted version, written after the build
# succeeded: a stale or half-written cache entry is rebuilt instead of failing later.
# Binaries under KUBEBUILDER_ASSETS are the user's choice and are linked as they are.
have() { # name version
  local name=$1 want=$2
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$name" ]; then
    ln -sf "$KUBEBUILDER_ASSETS/$name" "$BIN_DIR/$name"; return 0
  fi
  [ -e "$BIN_DIR/$name" ] && [ "$(cat "$BIN_DIR/$(dirname "$name")/.$(basename "$name").version" 2>/dev/null)" = "$want" ]
}
stamp() { echo "$2" >"$BIN_DIR/.$1.version"; }

run_logged() { # name cmd...
  local name=$1; shift
  local log=$LOG_DIR/$name.log start=$SECONDS
  if ! "$@" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "building $name failed (full log: $log). Check the Go toolchain version and the module proxy (go env GOPROXY), then rerun."
  fi
  echo "built $name in $((SECONDS - start)) s" >&2
}

k8s_wrapper() {
  local dir=$WORK/k8s-$K8S_VERSION minor
  minor=${K8S_VERSION#v1.}
  if [ ! -f "$dir/.ready" ]; then
    rm -rf "$dir"; mkdir -p "$dir"
    (
      cd "$dir"
      go mod init mlrollout.local/k8s >/dev/null 2>&1
      go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
      local gomod
      gomod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod
      # k8s.io/kubernetes requires its staging modules at v0.0.0; map each to the published v0.<minor>.
      local reps
      reps=$(awk '/^\t?k8s\.io\/[^ ]+ v0\.0\.0$/ {print $1}' "$gomod" | sed 's/^\t//' | sort -u)
      [ -n "$reps" ] || die "no v0.0.0 staging requirements found in $gomod"
      local args=()
      for m in $reps; do args+=("-replace=$m=$m@v0.$minor"); done
      go mod edit "${args[@]}"
      go get "k8s.io/kubernetes@$K8S_VERSION"
    ) >"$LOG_DIR/k8s-wrapper.log" 2>&1 || { tail -n 30 "$LOG_DIR/k8s-wrapper.log" >&2; die "preparing the k8s.io/kubernetes wrapper module failed (log: $LOG_DIR/k8s-wrapper.log)"; }
    touch "$dir/.ready"
  fi
  echo "$dir"
}

build_k8s() { # binary
  local name=$1 dir major minor
  have "$name" "$K8S_VERSION" && return 0
  dir=$(k8s_wrapper)
  major=1; minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local pkg=k8s.io/kubernetes/cmd/$name
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  run_logged "$name" bash -c "cd '$dir' && go build -trimpath -ldflags '$ld' -o '$BIN_DIR/$name.tmp' $pkg && mv '$BIN_DIR/$name.tmp' '$BIN_DIR/$name'"
  stamp "$name" "$K8S_VERSION"
}

build_etcd() {
  have etcd "$ETCD_VERSION" && return 0
  local dir=$WORK/etcd-$ETCD_VERSION
  run_logged etcd bash -c "rm -rf '$dir' && mkdir -p '$dir' && cd '$dir' && go mod init mlrollout.local/etcd && go get go.etcd.io/etcd/server/v3@$ETCD_VERSION && go build -trimpath -ldflags '-s -w' -o '$BIN_DIR/etcd.tmp' go.etcd.io/etcd/server/v3 && mv '$BIN_DIR/etcd.tmp' '$BIN_DIR/etcd'"
  stamp etcd "$ETCD_VERSION"
}

build_install() { # name module/cmd version
  local name=$1 pkg=$2 ver=$3
  have "$name" "$ver" && return 0
  local ld="-s -w"
  [ "$name" = helm ] && ld="$ld -X helm.sh/helm/v3/internal/version.version=$ver"
  [ "$name" = kwok ] && ld="$ld -X sigs.k8s.io/kwok/pkg/consts.Version=$ver"
  [ "$name" = kubeconform ] && ld="$ld -X main.version=$ver"
  run_logged "$name" env GOBIN="$BIN_DIR" go install -trimpath -ldflags "$ld" "$pkg@$ver"
  stamp "$name" "$ver"
}

# A module whose go.mod has local replace directives (Traefik) or that is built as its own main
# module (CoreDNS: its plugin list is compiled in) is built inside a writable copy of its source.
module_dir() { # module version: the module's source in the module cache
  local src
  src=$(go mod download -json "$1@$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || { echo "no source directory for $1@$2" >&2; return 1; }
  echo "$src"
}

module_build() { # name module version package ldflags (run inside run_logged)
  local name=$1 mod=$2 ver=$3 pkg=$4 ld=$5 src dir=$WORK/$1-$3
  src=$(module_dir "$mod" "$ver") || return 1
  rm -rf "$dir" && cp -r "$src" "$dir" && chmod -R u+w "$dir"
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ld" -o "$BIN_DIR/$name.tmp" "$pkg") || { rm -rf "$dir"; return 1; }
  mv "$BIN_DIR/$name.tmp" "$BIN_DIR/$name" && rm -rf "$dir"
}

# CRDs published inside Go modules, copied as they are into $BIN_DIR/crds/<name>.yaml.
crds() { # name module version files...
  local name=$1 mod=$2 ver=$3 src out; shift 3
  have "crds/$name.yaml" "$ver" && [ -s "$BIN_DIR/crds/$name.yaml" ] && return 0
  src=$(module_dir "$mod" "$ver") || die "downloading $mod@$ver failed"
  mkdir -p "$BIN_DIR/crds"
  out=$BIN_DIR/crds/$name.yaml
  for f in "$@"; do [ -f "$src/$f" ] || die "$mod@$ver has no $f"; echo "---"; cat "$src/$f"; done >"$out.tmp"
  mv "$out.tmp" "$out"
  echo "$ver" >"$BIN_DIR/crds/.$name.yaml.version"
}

build_in_module() { # name module version package ldflags
  have "$1" "$3" && return 0
  run_logged "$1" module_build "$@"
  stamp "$1" "$3"
}

targets=${*:-"etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy kwok helm kubeconform coredns traefik gateway-api-crds istio-crds"}
for t in $targets; do
  case $t in
    etcd) build_etcd ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|kube-proxy) build_k8s "$t" ;;
    kwok) build_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" ;;
    helm) build_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
    kubeconform) build_install kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" ;;
    coredns) build_in_module coredns github.com/coredns/coredns "$COREDNS_VERSION" . "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" ;;
    traefik) build_in_module traefik github.com/traefik/traefik/v3 "$TRAEFIK_VERSION" ./cmd/traefik "-X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" ;;
    gateway-api-crds) crds gateway-api sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION" \
      config/crd/standard/gateway.networking.k8s.io_{gatewayclasses,gateways,httproutes,grpcroutes,referencegrants,backendtlspolicies}.yaml ;;
    istio-crds) crds istio istio.io/api "$ISTIO_API_VERSION" kubernetes/customresourcedefinitions.gen.yaml ;;
    *) die "unknown target $t" ;;
  esac
done
echo "$BIN_DIR"

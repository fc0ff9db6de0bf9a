#!/usr/bin/env bash
# Builds (or finds in its cache) the pinned etcd and kube-apiserver that the Kubernetes-facing tests
# run against; prints the folder that holds both binaries.
#
# Idempotent: the binaries live in a cache outside the clone ($IRSA_KUBERNETES_CACHE, by default
# $HOME/.cache/irsa-kubernetes/v<version>), so a fresh clone on a reused machine skips the build
# (about 6.5 minutes and 2.4 GB of memory on 2 cores, cold). A lock makes concurrent callers wait
# for one build instead of running two. Everything but the final path goes to standard error.
# GO picks the Go toolchain (default: go on PATH, else /usr/local/go/bin/go); it needs only the Go
# module proxy.
set -euo pipefail

readonly KUBERNETES_VERSION="1.37.2"
readonly ETCD_VERSION="3.6.16"
# The staging modules (k8s.io/api, k8s.io/apiserver, ...) are published as v0.<minor>.<patch>.
readonly STAGING_VERSION="v0.${KUBERNETES_VERSION#*.}"

cache="${IRSA_KUBERNETES_CACHE:-$HOME/.cache/irsa-kubernetes}/v$KUBERNETES_VERSION"
etcd="$cache/etcd"
apiserver="$cache/kube-apiserver"

built() { [[ -x "$etcd" && -x "$apiserver" ]]; }

if built; then
  echo "$cache"
  exit 0
fi

go="${GO:-}"
if [[ -z "$go" ]]; then
  if command -v go >/dev/null 2>&1; then go=go; else go=/usr/local/go/bin/go; fi
fi
if ! "$go" version >/dev/null 2>&1; then
  echo "setup_kubernetes: cannot run Go (\"$go\"); install Go 1.25 or later or set GO" >&2
  exit 1
fi

mkdir -p "$cache"
# One build at a time per cache: a second caller waits, then finds the binaries.
exec 9>"$cache/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if built; then
  echo "$cache"
  exit 0
fi

work="$(mktemp -d)"
# The downloads from the Go module proxy are tried again after a pause when they fail (a build that
# stopped on one would start over); the builds themselves then find every module in the module cache.
retry="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/retry.sh"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOFLAGS="-mod=mod" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
started=$SECONDS

if [[ ! -x "$etcd" ]]; then
  # etcd's own module has replace directives, so `go install` refuses it; a throw-away module
  # that requires it builds it.
  echo "setup_kubernetes: building etcd v$ETCD_VERSION (about 2 minutes)" >&2
  mkdir "$work/etcd"
  (
    cd "$work/etcd"
    "$go" mod init irsa.test/etcd >&2 2>/dev/null
    "$retry" "go get etcd" "$go" get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
    "$retry" "go list -deps etcd" "$go" list -deps go.etcd.io/etcd/server/v3 >/dev/null
    "$go" build -trimpath -o "$work/etcd.bin" go.etcd.io/etcd/server/v3 >&2
  )
  mv "$work/etcd.bin" "$etcd"
fi

if [[ ! -x "$apiserver" ]]; then
  # k8s.io/kubernetes points its staging modules at ./staging through replace directives and a
  # go.work; the same modules are published at v0.<minor>.<patch>, so a copy of the source with
  # those directives dropped builds from the module proxy alone.
  echo "setup_kubernetes: building kube-apiserver v$KUBERNETES_VERSION (about 4.5 minutes)" >&2
  "$retry" "go mod download kubernetes" "$go" mod download "k8s.io/kubernetes@v$KUBERNETES_VERSION" >&2
  source_dir="$("$go" mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" |
    sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')"
  if [[ -z "$source_dir" || ! -f "$source_dir/go.mod" ]]; then
    echo "setup_kubernetes: go mod download gave no source for k8s.io/kubernetes" >&2
    exit 1
  fi
  cp -r "$source_dir" "$work/kubernetes"
  chmod -R u+w "$work/kubernetes"
  (
    cd "$work/kubernetes"
    rm -f go.work go.work.sum
    sed -i -e '/^replace (/,/^)/d' -e '/^replace /d' \
      -e "s#^\(\s*k8s\.io/[^ ]*\) v0\.0\.0\(\s.*\)\?\$#\1 $STAGING_VERSION\2#" go.mod
    "$retry" "go list -deps kube-apiserver" "$go" list -deps ./cmd/kube-apiserver >/dev/null
    # Without these, /version says v0.0.0 and Helm refuses a chart with a kubeVersion.
    version_flags="-X k8s.io/component-base/version.gitVersion=v$KUBERNETES_VERSION"
    version_flags+=" -X k8s.io/component-base/version.gitMajor=${KUBERNETES_VERSION%%.*}"
    version_flags+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"
    "$go" build -trimpath -ldflags "$version_flags" -o "$work/kube-apiserver.bin" \
      ./cmd/kube-apiserver >&2
  )
  mv "$work/kube-apiserver.bin" "$apiserver"
fi

echo "setup_kubernetes: built in $((SECONDS - started)) s into $cache" >&2
echo "$cache"

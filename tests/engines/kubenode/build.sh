#!/usr/bin/env bash
# Build the test cluster's Kubernetes binaries from Debian bookworm's source package, once per
# machine. Upstream Kubernetes cannot be fetched here; Debian's source package (the full tree,
# vendor/ included) builds with Debian's golang-go. The binaries are cached outside the clone,
# keyed by the source package's version, so a machine that built them once skips this.
#
#   tests/engines/kubenode/build.sh          prints the directory holding the binaries (builds if missing)
#
# RUNNER_KUBE_CACHE moves the cache (default /var/cache/runner-tests/kubernetes).
set -euo pipefail
cache=${RUNNER_KUBE_CACHE:-/var/cache/runner-tests/kubernetes}
binaries=(kube-apiserver kubelet kube-scheduler kube-controller-manager)
# pause: the sandbox process of every Pod, built static from the tree's own pause.c.
made=("${binaries[@]}" pause)
log() { echo "kube-build: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# A deb-src entry for bookworm, on the mirror this machine's apt already uses (never a
# hard-coded host). Written once; apt-get update only when it is new.
src_list=/etc/apt/sources.list.d/runner-tests-src.sources
if [ ! -f "$src_list" ]; then
  mirror=$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1)
  [ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$mirror" ] || { log "no apt mirror found in /etc/apt/sources.list{,.d}"; exit 1; }
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" | as_root tee "$src_list" >/dev/null
  as_root apt-get update -qq
fi

version=$(apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/ {print $2; exit}')
[ -n "$version" ] || { log "apt knows no source package 'kubernetes'"; exit 1; }
out="$cache/$version"
built() { for b in "${made[@]}"; do [ -x "$out/$b" ] || return 1; done; }
if built; then echo "$out"; exit 0; fi
# One build at a time: a second caller (the test fixture, while CI's own build runs in the
# background) waits for the first, then finds the binaries built.
exec 9>"${TMPDIR:-/tmp}/runner-kube-build-$version.lock"
flock 9
if built; then echo "$out"; exit 0; fi

log "building ${binaries[*]} from Debian's kubernetes $version (once per machine; ~10 min)"
apt_install golang-go rsync dpkg-dev gcc libc6-dev golang-github-modern-go-reflect2-dev
work=$(mktemp -d "${TMPDIR:-/tmp}/runner-kube-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source -qq kubernetes >/dev/null 2>&1)
tree=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -1)
# With Go 1.19 the API server panics in the vendored reflect2 1.0.1; Debian's 1.0.2 fixes it.
rm -rf "$tree/vendor/github.com/modern-go/reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"
whats=$(printf 'cmd/%s ' "${binaries[@]}")
(cd "$tree" && GOPROXY=off GOCACHE="$work/gocache" GOPATH="$work/gopath" \
   make WHAT="$whats" >"$work/make.log" 2>&1) || { tail -40 "$work/make.log" >&2; exit 1; }
as_root mkdir -p "$out"
for b in "${binaries[@]}"; do
  as_root install -m 0755 "$(find "$tree/_output" -type f -name "$b" -perm -u+x | head -1)" "$out/$b"
done
gcc -Os -static -DVERSION=debian-"$version" -o "$work/pause" "$tree/build/pause/linux/pause.c"
as_root install -m 0755 "$work/pause" "$out/pause"
log "built into $out"
echo "$out"

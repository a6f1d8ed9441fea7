#!/usr/bin/env bash
# Builds berth/workspace-debian, a real workspace with no registry: a Debian
# rootfs made by debootstrap from the Debian archive (cached as the local
# image berth/workspace-debian-base:<key>, so a rebuild takes seconds), the
# tools of the product's users, a non-root user coder (uid 1000), and
# berth-term, Berth's browser terminal, as its IDE.
# Needs root (debootstrap, chroot) and debootstrap (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${BERTH_DEBIAN_SUITE:-bookworm}
mirror=${BERTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=bash,ca-certificates,git,python3,build-essential,curl,vim-tiny,nano,less,procps,libjs-term.js
key=$(printf '%s %s %s v2' "$suite" "$mirror" "$packages" | sha256sum | cut -c1-12)
base=berth/workspace-debian-base:$key
ctx=.cache/images/workspace-debian

if ! docker image inspect "$base" >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "berth/workspace-debian not built: its Debian rootfs needs root (debootstrap, chroot); run sudo $0 once (later builds need no root)" >&2
    # Tests that need it then skip, or fail under BERTH_REQUIRE_DOCKER=1.
    [ "${BERTH_REQUIRE_DOCKER:-}" = 1 ] && exit 1
    exit 0
  fi
  if ! command -v debootstrap >/dev/null; then
    echo "installing debootstrap" >&2
    apt-get install -y -q debootstrap >/dev/null
  fi
  root=$(mktemp -d /tmp/berth-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap $suite into $root (a cold build takes a few minutes)" >&2
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 ||
    { tail -20 "$root.log" >&2; exit 1; }
  rm -f "$root.log"
  chroot "$root" useradd --uid 1000 --user-group --create-home --shell /bin/bash coder
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | docker import - "$base" >/dev/null
  echo "built $base" >&2
fi

rm -rf "$ctx" && mkdir -p "$ctx"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ctx/berth-term" ./cmd/berth-term
cp deploy/images/workspace-debian/Dockerfile "$ctx/"
docker build -q --build-arg BASE="$base" -t berth/workspace-debian:latest "$ctx"

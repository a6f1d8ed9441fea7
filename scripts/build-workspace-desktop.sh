#!/usr/bin/env bash
# Builds berth/workspace-desktop on berth/workspace-jupyter (so the desktop
# has the course tool set too; build-workspace-jupyter.sh first: make
# images does), adding TigerVNC, Openbox, xterm, Mousepad and noVNC from
# the Debian archive, and berth-desktop. Docker's build cache keeps the
# package layer: a rebuild takes seconds; docs/images.md has the cold time.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! docker image inspect berth/workspace-jupyter:latest >/dev/null 2>&1; then
  echo "berth/workspace-desktop not built: no berth/workspace-jupyter image (scripts/build-workspace-jupyter.sh makes it)" >&2
  [ "${BERTH_REQUIRE_DOCKER:-}" = 1 ] && exit 1
  exit 0
fi
ctx=.cache/images/workspace-desktop
rm -rf "$ctx" && mkdir -p "$ctx"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ctx/berth-desktop" ./cmd/berth-desktop
cp deploy/images/workspace-desktop/{Dockerfile,start-desktop,menu.xml} "$ctx/"
packages="tigervnc-standalone-server openbox xterm mousepad novnc xfonts-base fonts-dejavu-core x11-xserver-utils"
docker build -q --build-arg BASE=berth/workspace-jupyter:latest --build-arg PACKAGES="$packages" \
  -t berth/workspace-desktop:latest "$ctx" >/dev/null
echo "built berth/workspace-desktop:latest" >&2

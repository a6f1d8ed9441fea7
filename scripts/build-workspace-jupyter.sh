#!/usr/bin/env bash
# Builds berth/workspace-jupyter on the Debian base that
# build-workspace-debian.sh makes (run it first: make images does), adding
# Debian's Jupyter Notebook and the course tool set from the Debian
# archive. Docker's build cache keeps the package layer: a rebuild takes
# seconds; docs/images.md has the cold time.
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(docker image ls --format '{{.Repository}}:{{.Tag}}' berth/workspace-debian-base | head -1)
if [ -z "$base" ]; then
  echo "berth/workspace-jupyter not built: no berth/workspace-debian-base image (scripts/build-workspace-debian.sh makes it)" >&2
  [ "${BERTH_REQUIRE_DOCKER:-}" = 1 ] && exit 1
  exit 0
fi
packages="jupyter-notebook python3-ipykernel python3-numpy python3-pandas python3-matplotlib nodejs default-jdk-headless g++ make git procps"
docker build -q --build-arg BASE="$base" --build-arg PACKAGES="$packages" \
  -t berth/workspace-jupyter:latest deploy/images/workspace-jupyter >/dev/null
echo "built berth/workspace-jupyter:latest on $base" >&2

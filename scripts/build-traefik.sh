#!/usr/bin/env bash
# Builds a pinned Traefik from its Go module (no image can be pulled, and
# `go install module@version` refuses Traefik's replace directives).
# Usage: build-traefik.sh VERSION OUTPUT
set -euo pipefail
version=$1 out=$2
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
dir=$(go mod download -json "github.com/traefik/traefik/v3@${version}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "traefik ${version}: module download failed" >&2; exit 1; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$dir/." "$work/"
chmod -R u+w "$work"
echo "building traefik ${version} (a few minutes on a cold cache)..." >&2
(cd "$work" && go build -trimpath -ldflags "-s -w" -o "$out.tmp" ./cmd/traefik)
mv "$out.tmp" "$out"

#!/usr/bin/env bash
# Builds every local image with no pull: the demo workspace, each Berth
# service, and stand-ins for nats and traefik. Usage: build-images.sh TRAEFIK_BIN
set -euo pipefail
cd "$(dirname "$0")/.."
traefik_bin=${1:?traefik binary}
ctx=.cache/images
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || { echo "missing $certs (install ca-certificates)" >&2; exit 1; }
export CGO_ENABLED=0
gobuild() { go build -trimpath -ldflags "-s -w" "$@"; }

fresh() { rm -rf "$ctx/$1" && mkdir -p "$ctx/$1"; }

fresh workspace-demo
gobuild -o "$ctx/workspace-demo/workspace-demo" ./cmd/workspace-demo
cp deploy/images/workspace-demo/Dockerfile "$ctx/workspace-demo/"
mkdir -p "$ctx/workspace-demo/home"
docker build -q -t berth/workspace-demo:latest "$ctx/workspace-demo"

gobuild -o "$ctx/probe" ./cmd/probe
for svc in api provisioner router-sync reaper; do
  fresh "$svc"
  gobuild -o "$ctx/$svc/service" "./services/$svc"
  cp deploy/images/service/Dockerfile "$certs" "$ctx/probe" "$ctx/$svc/"
  mkdir -p "$ctx/$svc/data"
  docker build -q -t "berth/$svc:latest" "$ctx/$svc"
done

fresh nats
(cd pkg/platform && GOWORK=off gobuild -o "../../$ctx/nats/nats-server" github.com/nats-io/nats-server/v2)
cp deploy/images/nats/Dockerfile "$ctx/probe" "$ctx/nats/"
docker build -q -t berth/nats:local "$ctx/nats"

fresh traefik
cp "$traefik_bin" "$ctx/traefik/traefik"
cp deploy/images/traefik/Dockerfile "$certs" "$ctx/traefik/"
docker build -q -t berth/traefik:local "$ctx/traefik"

#!/usr/bin/env bash
# Starts Berth on one machine: the API (with embedded NATS), the
# provisioner, router-sync, the reaper and Traefik; logs to this terminal; Ctrl-C stops
# everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
export BERTH_DEV_TOKENS="${BERTH_DEV_TOKENS:-true}"
traefik=${TRAEFIK_BIN:?set TRAEFIK_BIN (make run does)}
mkdir -p data/traefik/dynamic
# Router-sync also routes /api/ to the API: one origin for the session cookie.
export BERTH_ROUTE_API_URL="${BERTH_ROUTE_API_URL:-http://127.0.0.1:8080}"

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

./bin/berth-api & pids+=($!)
# The others reconnect until the API's embedded NATS is up.
./bin/berth-provisioner & pids+=($!)
./bin/berth-router-sync & pids+=($!)
./bin/berth-reaper & pids+=($!)
"$traefik" --configfile=deploy/traefik/traefik.yml & pids+=($!)
echo "Traefik: http://localhost:8000/api/ (the API) and http://localhost:8000/workspace-<name>/" >&2
wait -n "${pids[@]}"

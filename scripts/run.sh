#!/usr/bin/env bash
# Starts Berth on one machine: the API (with embedded NATS) and the
# provisioner, logs to this terminal; Ctrl-C stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
export BERTH_DEV_TOKENS="${BERTH_DEV_TOKENS:-true}"

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

./bin/berth-api & pids+=($!)
# The provisioner reconnects until the API's embedded NATS is up.
./bin/berth-provisioner & pids+=($!)
wait -n "${pids[@]}"

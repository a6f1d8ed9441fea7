#!/bin/sh
# stress.sh: the bus-, Docker- and cluster-facing tests under -race, again
# and again, beside CPU-bound loops (a shared CI host). What flakes only
# under load shows here. docs/testing.md says how long it takes.
#
#   STRESS_COUNT   runs of each test (default 5)
#   STRESS_LOAD    CPU-bound loops beside them (default 2)
#   STRESS_RUN     go test -run filter (default: every test)
#   STRESS_PKGS    packages (default below)
set -eu
count=${STRESS_COUNT:-5}
load=${STRESS_LOAD:-2}
run=${STRESS_RUN:-.}
pkgs=${STRESS_PKGS:-"./services/api/ ./pkg/platform/natsbus/... ./pkg/platform/eventlog/... ./services/provisioner/"}
go=${GO:-go}

pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
i=0
while [ "$i" -lt "$load" ]; do
	sh -c 'while :; do :; done' &
	pids="$pids $!"
	i=$((i + 1))
done

echo "stress: -race -count=$count -run '$run' beside $load CPU loops: $pkgs"
start=$(date +%s)
status=0
# shellcheck disable=SC2086
$go test -race -count="$count" -run "$run" -timeout 60m $pkgs || status=$?
echo "stress: $(( $(date +%s) - start )) s, exit $status"
exit "$status"

#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests when it is missing
# (root and apt needed; elsewhere the tests say what is missing and skip,
# or fail under BERTH_REQUIRE_DOCKER=1).
set -euo pipefail
if command -v chromium >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "chromium is missing and cannot be installed here (needs root and apt): the browser tests will not run" >&2
  exit 0
fi
echo "installing chromium (Debian package) for the browser tests" >&2
apt-get install -y -q chromium >/dev/null

#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, then runs the whole
# meson test suite inside a private network namespace (loopback only), so
# that no test can send anything off the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
if [ -f tests/browser/package.json ]; then
  (cd tests/browser && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; })
fi

status=0
if [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null; then
  unshare -n bash -c 'ip link set lo up && meson test -C build --print-errorlogs "$@"' _ "$@" || status=$?
else
  echo "warning: cannot create a private network namespace; running tests on the host loopback" >&2
  meson test -C build --print-errorlogs "$@" || status=$?
fi
python3 tests/summary.py build/meson-logs/testlog.json
exit $status

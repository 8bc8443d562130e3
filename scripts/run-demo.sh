#!/usr/bin/env bash
# Quick start: installs what is missing, builds, and runs an all-in-one
# xdn-node with a live demo stream. Extra arguments go to xdn-node.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export GST_PLUGIN_PATH_1_0="$PWD/build/plugins/xdn${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
exec build/apps/node/xdn-node --demo "$@"

#!/usr/bin/env bash
# Installs the Debian 12 packages OpenXDN needs to build, run and test.
# Installs only what is missing; safe to run again.
set -euo pipefail

packages=(
  # build
  meson ninja-build pkg-config g++ libgtest-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libnice-dev libsoup-3.0-dev libjson-glib-dev libsrt-gnutls-dev libglib2.0-dev-bin
  libsqlite3-dev libpq-dev libssl-dev libsrtp2-dev
  # run
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice
  gstreamer1.0-x
  # test peers
  ffmpeg srt-tools chromium chromium-driver nodejs iproute2 util-linux
  postgresql
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

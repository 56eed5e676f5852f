#!/usr/bin/env bash
# Installs every Debian package longhaul needs to build, test, benchmark and plot.
# Idempotent: packages already present are skipped, so re-running costs seconds.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  openmpi-bin libopenmpi-dev
  libzstd-dev libsodium-dev libcunit1-dev
  libopenblas-dev libjson-c-dev libmicrohttpd-dev
  clang libclang-rt-dev libomp-dev
  gnuplot-nox iproute2 python3
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

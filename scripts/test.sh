#!/usr/bin/env bash
# Set up, build and run the whole test suite (README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
ctest --test-dir "${LONGHAUL_BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "$@"

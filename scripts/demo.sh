#!/usr/bin/env bash
# Set up, build and run the demonstration job on the embedded defaults
# (README's demo command).  Arguments are passed to `longhaul demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh --target longhaul
exec ./build/longhaul demo "$@"

#!/usr/bin/env bash
# Configure and build longhaul into ./build (Release; CUDA kernels compiled
# when nvcc is present).  Extra CMake arguments come from LONGHAUL_CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${LONGHAUL_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=${LONGHAUL_BUILD_TYPE:-Release} ${LONGHAUL_CMAKE_ARGS:-}
cmake --build "$build_dir" -j"$(nproc)" "$@"

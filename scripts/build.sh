#!/bin/sh
# Configures and builds ladle into ./build (ccache when present, 2 jobs).
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${LADLE_CMAKE_ARGS:-} >/dev/null
cmake --build build -j "${LADLE_BUILD_JOBS:-2}"

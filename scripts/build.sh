#!/bin/sh
# Configures ladle's build and builds the given CMake targets (default:
# ladle, the binary; `all`: everything, the tests too) into $LADLE_BUILD_DIR
# (default ./build), with ccache when it is installed, $LADLE_BUILD_JOBS
# (default 2) compiles at a time. CMake's and the compiler's output go to
# the log (scripts/lib.sh); extra CMake options: $LADLE_CMAKE_ARGS.
# Usage: scripts/build.sh [TARGET...]
set -eu
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ $# -gt 0 ] || set -- ladle

build() {
  # shellcheck disable=SC2086
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${LADLE_CMAKE_ARGS:-} &&
    cmake --build "$build_dir" -j "$jobs" --target "$@"
}
if [ "$*" = all ]; then what="everything (ladle and every test)"; else what=$*; fi
phase "building $what in $build_dir, $jobs jobs" build "$@"

#!/bin/sh
# Build cost of ladle, in CPU-seconds (user + sys of the compiler processes),
# which stay comparable on a shared machine where wall time does not. Each
# configuration builds from scratch in its own directory, ccache off, 2 jobs:
#   ladle             the README's main command builds this target only
#   ladle, LADLE_PCH  the same with precompiled standard + nlohmann-json headers per part
#   ladle_runner_tests, with and without LADLE_PCH (gtest + gmock precompiled too)
#   all               everything the test command builds
# Usage: tests/bench/build_bench.sh [WORKDIR]   (default: a temporary directory)
# Needs /usr/bin/time (Debian: time).
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d)}
jobs=${LADLE_BUILD_JOBS:-2}
export CCACHE_DISABLE=1

measure() {  # NAME DIR CMAKE_ARGS TARGETS...
  name=$1 dir=$work/$2 args=$3
  shift 3
  mkdir -p "$dir"
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $args > "$dir.cmake.log"
  /usr/bin/time -f "%e %U %S" -o "$dir.time" ninja -C "$dir" -j "$jobs" "$@" > "$dir.log" 2>&1 ||
    { tail -20 "$dir.log"; exit 1; }
  read -r wall user sys < "$dir.time"
  awk -v n="$name" -v w="$wall" -v u="$user" -v s="$sys" -v j="$jobs" \
    'BEGIN { printf "%-32s %8.1f CPU-s  (wall %6.1f s, %s jobs)\n", n, u + s, w, j }'
}

echo "build cost from scratch, ccache off ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
measure "ladle" plain "-DLADLE_PCH=OFF" ladle
measure "ladle, LADLE_PCH=ON" pch "-DLADLE_PCH=ON" ladle
measure "+ ladle_runner_tests" plain "-DLADLE_PCH=OFF" ladle_runner_tests
measure "+ ladle_runner_tests, PCH" pch "-DLADLE_PCH=ON" ladle_runner_tests
measure "+ everything else (test command)" plain "-DLADLE_PCH=OFF" all

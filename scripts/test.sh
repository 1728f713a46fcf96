#!/bin/sh
# README's test command: install, build, and run every test.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
scripts/build.sh
cd build
ctest --output-on-failure -j "${LADLE_TEST_JOBS:-2}" --timeout 600

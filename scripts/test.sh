#!/bin/sh
# README's test command: install (Debian packages, and the npm packages of
# the browser and OpenFeature SDK tests), build everything, run every test
# with ctest. The install and build steps print one line each; their output
# is in the log they name.
set -eu
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/install-deps.sh --test
scripts/build.sh all
test_jobs=${LADLE_TEST_JOBS:-2}
# The docker tests' fixture (tests/env/docker_setup.sh) writes this when it
# starts a dockerd, which it leaves running for the next run.
started=/tmp/ladle-dockerd.started
rm -f "$started"
say "ctest in $build_dir: every test, $test_jobs at a time"
status=0
(cd "$build_dir" && ctest --output-on-failure -j "$test_jobs" --timeout 600) || status=$?
if [ -f "$started" ]; then
  echo
  cat "$started"
fi
exit "$status"

#!/bin/sh
# README's main command: install, build, and run the demo pipeline.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export LADLE_HOME="${LADLE_HOME:-$PWD/.ladle-demo}"
exec ./build/ladle run pipelines/demo.yml --backend local

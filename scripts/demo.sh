#!/bin/sh
# README's main command: install, build, run the demo pipeline with `ladle
# run`, then let `ladle serve` carry a commit of a demo repository to
# production (scripts/demo-serve.sh).
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export LADLE_HOME="${LADLE_HOME:-$PWD/.ladle-demo}"
./build/ladle run pipelines/demo.yml --backend local
exec scripts/demo-serve.sh

#!/bin/sh
# README's main command: install, build the ladle binary, run the demo
# pipeline with `ladle run`, then let `ladle serve` carry a commit of a demo
# repository to production (scripts/demo-serve.sh). The install and build
# steps print one line each; their output is in the log they name.
set -eu
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/install-deps.sh
scripts/build.sh ladle
export LADLE_HOME="${LADLE_HOME:-$PWD/.ladle-demo}"
export LADLE_BIN="$build_dir/ladle"
say "the demo pipeline: $LADLE_BIN run pipelines/demo.yml --backend local"
"$LADLE_BIN" run pipelines/demo.yml --backend local
exec scripts/demo-serve.sh

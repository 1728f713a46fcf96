#!/bin/sh
# "Deploys" the demo application: copies it into $DEPLOY_DIR/ENVIRONMENT.
set -e
env=$1
target="${DEPLOY_DIR:-/tmp/ladle-demo}/$env"
mkdir -p "$target"
cp build/app "$target/app.new"
mv "$target/app.new" "$target/app"   # atomic switch
echo "${LADLE_COMMIT:-unknown}" > "$target/REVISION"
echo "deployed $(cat "$target/REVISION" | cut -c1-8) to $target (run ${LADLE_RUN:-?})"
